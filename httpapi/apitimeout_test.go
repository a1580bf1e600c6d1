package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestEndpointCheckWithinAPITimeout: a resolver that never answers still
// gives an answer within the API timeout, naming the endpoint.
func TestEndpointCheckWithinAPITimeout(t *testing.T) {
	db, cust, token := testTenant(t)
	const timeout = 400 * time.Millisecond
	srv := httptest.NewServer(New(Options{
		DB: db, APITimeout: timeout,
		Hooks: Hooks{CheckEndpoint: func(ctx context.Context, raw string) error {
			<-ctx.Done() // a resolver that hangs
			return ctx.Err()
		}},
	}))
	defer srv.Close()

	body := `{"title":"slow dns","endpoint":"https://slow.example/hook","events":[]}`
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/"+cust.String()+"/webhooks/subscriptions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if took := time.Since(start); took >= timeout {
		t.Errorf("got the answer after %s, want it within the API timeout %s", took, timeout)
	}
	var p Error
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || len(p.Params) != 1 || p.Params[0].Name != "endpoint" || !strings.Contains(p.Params[0].Reason, "in time") {
		t.Errorf("got %d %+v, want 400 naming the endpoint that did not resolve in time", resp.StatusCode, p)
	}
}
