package httpapi

import (
	"encoding/json"
	"hookd/store/bolt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// TestAccessTokenExpires: a token from the token endpoint answers 200 up
// to the end of its lifetime and 403 "expired" from then on, on the
// store's clock, which stands still until the test moves it.
func TestAccessTokenExpires(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	db, err := bolt.Open(t.TempDir(), bolt.Options{NoSync: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		db.Close()
	})
	customer, clientID := uuid.New(), uuid.New()
	if _, err := db.CreateClient(customer, clientID, store.HashSecret("secret"), func() (store.KeySet, error) { return store.KeySet{}, nil }); err != nil {
		t.Fatal(err)
	}
	const ttl = 90 * time.Second
	srv := httptest.NewServer(New(Options{DB: db, TokenTTL: ttl}))
	defer srv.Close()

	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/"+customer.String()+"/login/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID.String(), "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("token: got %d (%v), want 200", resp.StatusCode, err)
	}
	if tok.ExpiresIn != 90 {
		t.Errorf("got expires_in %d, want 90", tok.ExpiresIn)
	}

	list := func() (int, Error) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/"+customer.String()+"/webhooks/subscriptions", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p Error
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p
	}
	if code, _ := list(); code != http.StatusOK {
		t.Fatalf("fresh token: got %d, want 200", code)
	}
	advance(ttl - time.Nanosecond)
	if code, _ := list(); code != http.StatusOK {
		t.Errorf("at the end of the token's lifetime: got %d, want 200", code)
	}
	advance(time.Nanosecond)
	code, p := list()
	if code != http.StatusForbidden || !strings.Contains(p.Details, "expired") {
		t.Errorf("once the lifetime has passed: got %d %q, want 403 calling the token expired", code, p.Details)
	}
}
