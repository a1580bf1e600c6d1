package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// While the disk is below its reserve the intake refuses events with 503
// /insufficient-storage and Retry-After, /readyz says why it is not ready,
// and reads go on; when the space comes back both recover by themselves.
func TestDiskLowRefusesIntakeOnly(t *testing.T) {
	db, cust, token := testTenant(t)
	now := time.Now().UTC()
	sub := store.Subscription{ID: uuid.New(), CustomerID: cust, Title: "s1", Endpoint: "https://example.com/hook", Events: []string{"entityCreated"}, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateSubscription(sub, 0); err != nil {
		t.Fatal(err)
	}
	var low atomic.Bool
	const admin = "admin-token-0123456789"
	api := New(Options{DB: db, AdminToken: admin, Hooks: Hooks{DiskLow: func() (bool, string) {
		if low.Load() {
			return true, "the file system of /data has 1.0 MiB free, below the reserve of 32.0 MiB"
		}
		return false, ""
	}}})
	api.SetReady(true)
	srv := httptest.NewServer(api)
	defer srv.Close()
	call := func(method, path, tok, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	event := `{"type":"entityCreated","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":"s"}}`
	intake := "/" + cust.String() + "/webhooks/events"

	low.Store(true)
	resp, body := call(http.MethodPost, intake, admin, event)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"type":"/insufficient-storage"`) {
		t.Fatalf("intake while low: got %d %s, want 503 /insufficient-storage", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Retry-After"); got != "30" {
		t.Errorf("got Retry-After %q, want 30", got)
	}
	if sum, _ := db.Summary(cust, sub.ID); sum.Retrying != 0 {
		t.Errorf("got %d events recorded by a refused intake, want 0", sum.Retrying)
	}
	resp, body = call(http.MethodGet, "/readyz", "", "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "below the reserve") {
		t.Errorf("readyz while low: got %d %s, want 503 naming the reserve", resp.StatusCode, body)
	}
	if resp, body := call(http.MethodGet, "/"+cust.String()+"/webhooks/subscriptions/"+sub.ID.String(), token, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("a read while low: got %d %s, want 200", resp.StatusCode, body)
	}

	low.Store(false)
	if resp, body := call(http.MethodPost, intake, admin, event); resp.StatusCode != http.StatusAccepted {
		t.Errorf("intake after recovery: got %d %s, want 202", resp.StatusCode, body)
	}
	if resp, body := call(http.MethodGet, "/readyz", "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("readyz after recovery: got %d %s, want 200", resp.StatusCode, body)
	}
}
