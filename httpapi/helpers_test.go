package httpapi

import (
	"context"
	"encoding/json"
	"hookd/store/bolt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// testTenant opens a store in a temporary directory with one customer, a
// client and a valid access token for it. The store is checked for
// consistency and closed at the end of the test.
func testTenant(t *testing.T) (db *bolt.DB, customer uuid.UUID, token string) {
	t.Helper()
	db, err := bolt.Open(t.TempDir(), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		db.Close()
	})
	customer = uuid.New()
	noKeys := func() (store.KeySet, error) { return store.KeySet{}, nil }
	cl, err := db.CreateClient(customer, uuid.New(), store.HashSecret("secret"), noKeys)
	if err != nil {
		t.Fatal(err)
	}
	token = "test-token-" + uuid.NewString()
	if err := db.PutToken(store.HashSecret(token), store.Token{CustomerID: customer, ClientID: cl.ID, Scope: WebhooksScope, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return db, customer, token
}

// testAdminToken is the admin token of servers built by testAPI.
const testAdminToken = "test-admin-token-0123456789"

// testAPI serves a Server on db with o (the admin token and an endpoint
// check that accepts every URL filled in when absent) on a real listener.
// The Server is returned so that a test may wrap its collaborators before
// the first request.
func testAPI(t *testing.T, db *bolt.DB, o Options) (*Server, string) {
	t.Helper()
	o.DB = db
	if o.AdminToken == "" {
		o.AdminToken = testAdminToken
	}
	if o.Hooks.CheckEndpoint == nil {
		o.Hooks.CheckEndpoint = func(context.Context, string) error { return nil }
	}
	s := New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// apiResult is an answer of the API.
type apiResult struct {
	Status  int
	Header  http.Header
	Body    []byte
	Problem Error // decoded when the answer is problem JSON
}

// callAPI sends body (nil: none) with the bearer token and content type.
func callAPI(t *testing.T, method, url, token, contentType string, body io.Reader) apiResult {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := apiResult{Status: resp.StatusCode, Header: resp.Header, Body: data}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		if err := json.Unmarshal(data, &res.Problem); err != nil {
			t.Fatalf("problem body %q: %v", data, err)
		}
	}
	return res
}

// names returns the names of a problem's invalid parameters.
func (p Error) names() []string {
	var out []string
	for _, bp := range p.Params {
		out = append(out, bp.Name)
	}
	return out
}
