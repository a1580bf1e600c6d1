package bolt

import (
	"hookd/store"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestBacklog(t *testing.T) {
	db, clk := openEventsDB(t)
	check := func(wantWaiting, wantRetrying uint64, wantOldest time.Time) {
		t.Helper()
		waiting, retrying, oldest, err := db.Backlog()
		if err != nil {
			t.Fatal(err)
		}
		if waiting != wantWaiting || retrying != wantRetrying || !oldest.Equal(wantOldest) {
			t.Errorf("got backlog waiting=%d retrying=%d oldest=%v, want %d %d %v", waiting, retrying, oldest, wantWaiting, wantRetrying, wantOldest)
		}
	}
	check(0, 0, time.Time{})

	cust := uuid.New()
	a := addEvSub(t, db, cust, "a")
	b := addEvSub(t, db, cust, "b")
	first := clk.Now()
	addN(t, db, 3, a)
	clk.Add(time.Second)
	addN(t, db, 2, b)
	check(5, 0, first)

	// One of b's events waits for a retry in an hour; a's events succeed.
	evs, _, err := db.DueEvents(a.ID, clk.Now(), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	var results []store.AttemptResult
	for _, e := range evs {
		results = append(results, store.AttemptResult{SubscriptionID: a.ID, Seq: e.Seq, StartedAt: clk.Now(), JWS: "x.y.z", Outcome: store.Delivered, StatusCode: 200})
	}
	bEvents, _, _ := db.DueEvents(b.ID, clk.Now(), 1, nil)
	retryAt := clk.Now().Add(time.Hour)
	results = append(results, store.AttemptResult{SubscriptionID: b.ID, Seq: bEvents[0].Seq, StartedAt: clk.Now(), JWS: "x.y.z", Outcome: store.Retry, RetryAt: retryAt, StatusCode: 503})
	if err := db.RecordAttempts(results); err != nil {
		t.Fatal(err)
	}
	check(1, 1, first.Add(time.Second))

	// A deleted subscription's events no longer count.
	if err := db.DeleteSubscription(cust, b.ID); err != nil {
		t.Fatal(err)
	}
	check(0, 0, time.Time{})
}
