package postgres

import (
	"context"
	"testing"
	"time"

	"hookd/store"
)

// detailRows counts the rows of attempt_details.
func detailRows(t *testing.T, db *DB) int {
	t.Helper()
	var n int
	if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM attempt_details`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFailureWithoutBodyStoresNoDetail: an attempt that failed with a
// response and no body writes no row of attempt_details (the event's
// response holds it) until the event's next attempt, which keeps it.
func TestFailureWithoutBodyStoresNoDetail(t *testing.T) {
	a, _, s := openNodes(t)
	added, err := a.AddEvents([]store.NewEvent{{Type: "entityCreated", Payload: []byte(`{}`)}}, []store.Delivery{{SubscriptionID: s.ID}})
	if err != nil || len(added) != 1 {
		t.Fatalf("added %v, %v", added, err)
	}
	failed := store.AttemptResult{SubscriptionID: s.ID, Seq: store.EventSeq(added[0].ID), StartedAt: a.Now(), Endpoint: s.Endpoint,
		Outcome: store.Retry, StatusCode: 503, Headers: []store.Header{{Name: "Retry-After", Value: "1"}}, RetryAt: a.Now().Add(time.Hour)}
	if err := a.RecordAttempts([]store.AttemptResult{failed}); err != nil {
		t.Fatal(err)
	}
	if n := detailRows(t, a); n != 0 {
		t.Fatalf("after a failure without a body: %d rows of attempt_details, want 0", n)
	}
	if err := a.RecordAttempts([]store.AttemptResult{failed}); err != nil {
		t.Fatal(err)
	}
	if n := detailRows(t, a); n != 1 {
		t.Fatalf("after the next attempt: %d rows of attempt_details, want 1 (the first attempt's)", n)
	}
}
