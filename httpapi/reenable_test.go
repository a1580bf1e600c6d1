package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// TestReenableFailsOldWaitingEventsFirst: re-enabling a disabled
// subscription whose waiting events were not all failed yet finishes that
// work first; when it cannot within the request's time it refuses with 503
// and leaves the subscription disabled, so no old event is ever sent.
func TestReenableFailsOldWaitingEventsFirst(t *testing.T) {
	db, cust, token := testTenant(t)
	now := time.Now().UTC()
	sub := store.Subscription{ID: uuid.New(), CustomerID: cust, Title: "backlog", Endpoint: "https://example.com/hook", Events: []string{"entityCreated"}, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateSubscription(sub, 0); err != nil {
		t.Fatal(err)
	}
	const waiting = store.FailWaitingBatch + 100
	events := []store.NewEvent{{Type: "entityCreated", Txn: uuid.NewString(), Toe: now.Unix(), Payload: []byte(`{"sub":"s"}`)}}
	deliveries := make([]store.Delivery, waiting)
	for i := range deliveries {
		deliveries[i] = store.Delivery{SubscriptionID: sub.ID}
	}
	if _, err := db.AddEvents(events, deliveries); err != nil {
		t.Fatal(err)
	}
	// Disabled behind the API's back: its waiting events are not failed yet,
	// as after a disable whose request ran out of time.
	if _, _, err := db.UpdateSubscription(cust, sub.ID, func(s *store.Subscription) error { s.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}

	patch := func(timeout time.Duration) int {
		srv := httptest.NewServer(New(Options{DB: db, APITimeout: timeout}))
		defer srv.Close()
		req, _ := http.NewRequest(http.MethodPatch, srv.URL+"/"+cust.String()+"/webhooks/subscriptions/"+sub.ID.String(), strings.NewReader(`{"enabled":true}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/merge-patch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := patch(time.Millisecond); got != http.StatusServiceUnavailable {
		t.Fatalf("re-enable with no time left: got status %d, want 503", got)
	}
	if s, _ := db.Subscription(cust, sub.ID); s.Enabled {
		t.Fatal("got the subscription enabled after a refused re-enable, want it disabled")
	}
	if got := patch(10 * time.Second); got != http.StatusOK {
		t.Fatalf("re-enable: got status %d, want 200", got)
	}
	sum, err := db.Summary(cust, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != waiting || sum.Retrying != 0 {
		t.Errorf("got failed %d, waiting %d; want %d failed and none waiting", sum.Failed, sum.Retrying, waiting)
	}
	if due, _ := db.DueSubscriptions(); len(due) != 0 {
		t.Errorf("got due events %v after re-enable, want none", due)
	}
}
