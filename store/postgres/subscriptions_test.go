package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
	"hookd/store/storetest"
)

// TestFailingSinceIsTheCountersColumn: FailingSince, DisableSubscription's
// failingBefore rule and a re-enable read and clear sub_stats.failing_since,
// the column the counters (stats.go) keep. The suite drives the same
// through recorded attempts.
func TestFailingSinceIsTheCountersColumn(t *testing.T) {
	clock := storetest.NewClock()
	db := openTest(t, clock.Now)
	s := store.Subscription{ID: uuid.New(), CustomerID: uuid.New(), Title: "t", Enabled: true, CreatedAt: clock.Now(), UpdatedAt: clock.Now()}
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatal(err)
	}
	start := clock.Now().Add(time.Second)
	if _, err := db.pool.Exec(context.Background(), `UPDATE sub_stats SET failing_since = $2 WHERE subscription_id = $1`, s.ID, start); err != nil {
		t.Fatal(err)
	}
	if got, err := db.FailingSince(s.ID); err != nil || !got.Equal(start) {
		t.Fatalf("FailingSince: got %v, %v; want %v", got, err, start)
	}
	if _, done, err := db.DisableSubscription(s.ID, store.DisabledEndpointFailing, start.Add(-time.Microsecond)); done || err != nil {
		t.Fatalf("disable before the run: got %v, %v; want not done", done, err)
	}
	clock.Add(time.Hour)
	got, done, err := db.DisableSubscription(s.ID, store.DisabledEndpointFailing, start)
	if !done || err != nil || got.Enabled || got.DisabledReason != store.DisabledEndpointFailing || !got.DisabledAt.Equal(clock.Now()) {
		t.Fatalf("disable at the run's start: got %+v, %v, %v; want disabled now", got, done, err)
	}
	_, after, err := db.UpdateSubscription(s.CustomerID, s.ID, func(s *store.Subscription) error { s.Enabled = true; return nil })
	if err != nil || !after.Enabled || after.DisabledReason != "" || !after.DisabledAt.IsZero() {
		t.Fatalf("re-enable: got %+v, %v; want enabled without reason", after, err)
	}
	if got, err := db.FailingSince(s.ID); err != nil || !got.IsZero() {
		t.Errorf("FailingSince after re-enable: got %v, %v; want zero", got, err)
	}
}
