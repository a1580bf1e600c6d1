package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// TestClientRateLimit: a client over its rate gets 429 with Retry-After
// and changes nothing; another client of the same customer is not held
// back; the client's token requests count against it too.
func TestClientRateLimit(t *testing.T) {
	db, cust, token := testTenant(t)
	other, err := db.CreateClient(cust, uuid.New(), store.HashSecret("other secret"), func() (store.KeySet, error) { return store.KeySet{}, nil })
	if err != nil {
		t.Fatal(err)
	}
	otherToken := "other-" + uuid.NewString()
	if err := db.PutToken(store.HashSecret(otherToken), store.Token{CustomerID: cust, ClientID: other.ID, Scope: WebhooksScope, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// One request every 100 s, bursts of 3: the test never sees a refill.
	srv := httptest.NewServer(New(Options{DB: db, ClientRate: 0.01, ClientBurst: 3, Hooks: Hooks{CheckEndpoint: func(_ context.Context, _ string) error { return nil }}}))
	defer srv.Close()
	subs := srv.URL + "/" + cust.String() + "/webhooks/subscriptions"

	call := func(method, bearer, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, subs, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for i := range 3 {
		if resp := call(http.MethodGet, token, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d within the burst: got %d, want 200", i+1, resp.StatusCode)
		}
	}
	resp := call(http.MethodPost, token, `{"title":"over the rate","endpoint":"https://a.example/hook","events":[]}`)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("call over the burst: got %d, want 429", resp.StatusCode)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 100 {
		t.Errorf("Retry-After: got %q, want whole seconds between 1 and 100", resp.Header.Get("Retry-After"))
	}
	var p Error
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Status != http.StatusTooManyRequests || p.Type != "/too-many-requests" {
		t.Errorf("problem: got %+v (%v), want status 429, type /too-many-requests", p, err)
	}
	if got, err := db.Subscriptions(cust); err != nil || len(got) != 0 {
		t.Errorf("subscriptions after the refused create: got %d (%v), want none", len(got), err)
	}

	// Another client of the customer has its own bucket.
	if resp := call(http.MethodGet, otherToken, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("another client: got %d, want 200", resp.StatusCode)
	}

	// A token request naming the limited client is refused before its
	// secret is looked at.
	form := url.Values{"grant_type": {"client_credentials"}}
	var clientID string
	if tok, err := db.LookupToken(store.HashSecret(token)); err == nil {
		clientID = tok.ClientID.String()
	} else {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/"+cust.String()+"/login/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, "secret")
	tr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tr.Body.Close()
	if tr.StatusCode != http.StatusTooManyRequests {
		t.Errorf("token request of the limited client: got %d, want 429", tr.StatusCode)
	}
}

// TestClientRateLimitOff: a negative rate turns the limit off.
func TestClientRateLimitOff(t *testing.T) {
	db, cust, token := testTenant(t)
	srv := httptest.NewServer(New(Options{DB: db, ClientRate: -1}))
	defer srv.Close()
	for i := range 300 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/"+cust.String()+"/webhooks/subscriptions", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d without a limit: got %d, want 200", i+1, resp.StatusCode)
		}
	}
}

// TestClientLimiterTable: the table of buckets stays bounded; a full
// table drops the buckets idle long enough to be full, or else all.
func TestClientLimiterTable(t *testing.T) {
	l := newClientLimiter(1000, 1)
	now := time.Now()
	for i := range maxLimiters - 1 {
		if ok, _ := l.allow(strconv.Itoa(i), now); !ok {
			t.Fatalf("first request of client %d refused", i)
		}
	}
	later := now.Add(2 * limiterIdle)
	l.allow("recent", later) // the table is now full
	l.allow("new", later)    // sweeps the idle ones
	if len(l.m) != 2 || l.m["recent"] == nil || l.m["new"] == nil {
		t.Errorf("after the sweep: got %d buckets, want only the 2 recent ones", len(l.m))
	}
	if ok, wait := l.allow("recent", later); ok || wait <= 0 {
		t.Errorf("second request of a client with a burst of 1: got ok=%v wait=%v, want a refusal with a wait", ok, wait)
	}

	// A full table of busy clients starts afresh rather than grow.
	for i := len(l.m); i < maxLimiters; i++ {
		l.allow("busy-"+strconv.Itoa(i), later)
	}
	l.allow("one more", later)
	if len(l.m) != 1 {
		t.Errorf("a full table with no idle bucket: got %d buckets after one more client, want 1", len(l.m))
	}
}

// TestClientLimiterShare: with the rate divided between nodes, each
// client's bucket (those there already and new ones) holds 1/nodes of the
// burst and refills at 1/nodes of the rate; with one node again it is
// whole.
func TestClientLimiterShare(t *testing.T) {
	l := newClientLimiter(10, 9)
	now := time.Now()
	if ok, _ := l.allow("old", now); !ok {
		t.Fatal("first request refused")
	}
	l.share(3, now)
	for _, key := range []string{"old", "new"} {
		n := 0
		for {
			ok, wait := l.allow(key, now)
			if !ok {
				// 10/3 per second: one token in 0.3 s.
				if wait < 250*time.Millisecond || wait > 350*time.Millisecond {
					t.Errorf("client %s: got wait %v, want about 300ms", key, wait)
				}
				break
			}
			n++
		}
		if n != 3 {
			t.Errorf("client %s with a third of a burst of 9: got %d requests, want 3", key, n)
		}
	}
	l.share(1, now)
	later := now.Add(time.Second) // refills to the whole burst
	n := 0
	for ok := true; ok; n++ {
		ok, _ = l.allow("old", later)
	}
	if n-1 != 9 {
		t.Errorf("with one node again: got %d requests in a burst, want 9", n-1)
	}
	var off *clientLimiter // no limit: nothing to share
	off.share(3, now)
}

// TestSetClientShare: the server's limit follows the node count it is
// given.
func TestSetClientShare(t *testing.T) {
	db, cust, token := testTenant(t)
	api := New(Options{DB: db, ClientRate: 0.01, ClientBurst: 2})
	api.SetClientShare(2)
	srv := httptest.NewServer(api)
	defer srv.Close()
	call := func() int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/"+cust.String()+"/webhooks/subscriptions", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call(); got != http.StatusOK {
		t.Fatalf("first call: got %d, want 200", got)
	}
	if got := call(); got != http.StatusTooManyRequests {
		t.Fatalf("second call with half a burst of 2: got %d, want 429", got)
	}
}
