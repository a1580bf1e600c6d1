package bolt

import (
	"hookd/store"
	"testing"
	"time"
)

// attempt returns an AttemptResult for event a started now.
func attempt(db *DB, a store.Added, o store.Outcome, status int, retryAt time.Time) store.AttemptResult {
	return store.AttemptResult{SubscriptionID: a.SubscriptionID, Seq: store.EventSeq(a.ID), StartedAt: db.Now(), JWS: "h.p.s", Outcome: o,
		RetryAt: retryAt, StatusCode: status, Headers: []store.Header{{Name: "X-Test", Value: "1"}}, Reason: "status"}
}

func mustRecord(t *testing.T, db *DB, rs ...store.AttemptResult) {
	t.Helper()
	if err := db.RecordAttempts(rs); err != nil {
		t.Fatalf("record attempts: %v", err)
	}
}
