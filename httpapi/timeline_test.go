package httpapi

import (
	"encoding/json"
	"hookd/store/bolt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// TestTimeline: the timeline answers the hours of the retention window
// and the minutes of the last hour that saw outcomes, oldest first, with
// their successes and failures; those before the window are left out, and
// an unknown subscription is 404.
func TestTimeline(t *testing.T) {
	var mu sync.Mutex
	now := time.Now().UTC().Truncate(time.Hour).Add(30 * time.Minute)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(at time.Time) { mu.Lock(); now = at; mu.Unlock() }
	end := now
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
	cust := uuid.New()
	noKeys := func() (store.KeySet, error) { return store.KeySet{}, nil }
	cl, err := db.CreateClient(cust, uuid.New(), store.HashSecret("secret"), noKeys)
	if err != nil {
		t.Fatal(err)
	}
	token := "test-token-" + uuid.NewString()
	if err := db.PutToken(store.HashSecret(token), store.Token{CustomerID: cust, ClientID: cl.ID, Scope: WebhooksScope, ExpiresAt: end.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	set(end.Add(-10 * 24 * time.Hour))
	sub := store.Subscription{ID: uuid.New(), CustomerID: cust, Title: "timeline", Endpoint: "https://example.com/hook", Events: EventTypes, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateSubscription(sub, 0); err != nil {
		t.Fatal(err)
	}
	add := func() []store.Added {
		t.Helper()
		a, err := db.AddEvents([]store.NewEvent{{Type: "entityCreated", Txn: uuid.NewString(), Toe: now.Unix(), Payload: []byte(`{}`)}},
			[]store.Delivery{{SubscriptionID: sub.ID}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	outcome := func(a store.Added, o store.Outcome) {
		t.Helper()
		if err := db.RecordAttempts([]store.AttemptResult{{SubscriptionID: a.SubscriptionID, Seq: store.EventSeq(a.ID), StartedAt: clock(), Outcome: o, StatusCode: 200}}); err != nil {
			t.Fatal(err)
		}
	}
	outcome(add()[0], store.Delivered) // before the window
	set(end.Add(-2 * time.Hour))
	outcome(add()[0], store.Failed)
	set(end)
	outcome(add()[0], store.Delivered)
	outcome(add()[0], store.Delivered)
	outcome(add()[0], store.Failed)

	_, base := testAPI(t, db, Options{})
	path := base + "/" + cust.String() + "/webhooks/subscriptions/"
	res := callAPI(t, http.MethodGet, path+sub.ID.String()+"/summary/timeline", token, "", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("got %d %s, want 200", res.Status, res.Body)
	}
	type span struct {
		Start     time.Time `json:"start"`
		Succeeded int       `json:"succeeded"`
		Failed    int       `json:"failed"`
	}
	var got struct {
		Hours   []span `json:"hours"`
		Minutes []span `json:"minutes"`
	}
	if err := json.Unmarshal(res.Body, &got); err != nil {
		t.Fatal(err)
	}
	hour := end.Truncate(time.Hour)
	if len(got.Hours) != 2 ||
		!got.Hours[0].Start.Equal(hour.Add(-2*time.Hour)) || got.Hours[0].Succeeded != 0 || got.Hours[0].Failed != 1 ||
		!got.Hours[1].Start.Equal(hour) || got.Hours[1].Succeeded != 2 || got.Hours[1].Failed != 1 {
		t.Errorf("got %s, want the hour two hours ago with 1 failure and this hour with 2 successes, 1 failure", res.Body)
	}
	if want := (span{Start: end.Truncate(time.Minute), Succeeded: 2, Failed: 1}); len(got.Minutes) != 1 || !got.Minutes[0].Start.Equal(want.Start) ||
		got.Minutes[0].Succeeded != want.Succeeded || got.Minutes[0].Failed != want.Failed {
		t.Errorf("got minutes %+v, want only this minute's %+v", got.Minutes, want)
	}
	if res := callAPI(t, http.MethodGet, path+uuid.NewString()+"/summary/timeline", token, "", nil); res.Status != http.StatusNotFound {
		t.Errorf("unknown subscription: got %d, want 404", res.Status)
	}
}
