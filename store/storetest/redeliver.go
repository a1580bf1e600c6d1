package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

func init() {
	register(map[string]func(*testing.T, Opener){
		"Redeliver":               testRedeliver,
		"RedeliverAllInBatches":   testRedeliverAllInBatches,
		"FailuresCountedByReason": testFailuresCountedByReason,
		"RedeliverFailedSelects":  testRedeliverFailedSelects,
		"RedeliverFailedPaced":    testRedeliverFailedPaced,
	})
}

func testRedeliver(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 2, s)
	if _, err := db.Redeliver(s.CustomerID, s.ID, added[0].ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("redeliver awaiting: got %v, want ErrConflict", err)
	}
	if _, err := db.Redeliver(s.CustomerID, s.ID, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("redeliver unknown: got %v, want ErrNotFound", err)
	}
	for range 3 {
		mustRecord(t, db, attempt(db, added[0], store.Retry, 500, clk.Now()))
	}
	mustRecord(t, db, attempt(db, added[0], store.Retry, 500, time.Time{}))
	failAll(t, db, added[1:])
	checkSummary(t, db, s, 0, 0, 2, 2)

	setEnabled(t, db, s, false)
	if _, err := db.Redeliver(s.CustomerID, s.ID, added[0].ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("redeliver on a disabled subscription: got %v, want ErrConflict", err)
	}
	setEnabled(t, db, s, true)
	clk.Add(time.Minute)
	e, err := db.Redeliver(s.CustomerID, s.ID, added[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if e.State != store.AwaitingExecuting || e.RoundStart != 4 || !e.DueAt.Equal(clk.Now()) || e.FailSeq != 0 {
		t.Fatalf("got %s roundStart %d due %v failSeq %d, want awaiting-executing 4 now 0", e.State, e.RoundStart, e.DueAt, e.FailSeq)
	}
	if last := e.History[len(e.History)-1]; last.State != store.AwaitingExecuting || last.Reason != "redelivery requested" {
		t.Errorf("got last history %+v, want a redelivery row", last)
	}
	checkSummary(t, db, s, 0, 1, 1, 1)
	if evs, _, _ := db.DueEvents(s.ID, clk.Now(), 10, nil); len(evs) != 1 || evs[0].ID != added[0].ID {
		t.Errorf("got %d due events, want the redelivered one", len(evs))
	}
}

func testRedeliverAllInBatches(t *testing.T, open Opener) {
	db, _ := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 7, s)
	failAll(t, db, added)
	exportFailures(t, db, s, store.ExportCompleted)
	// Two exported events fail again (no failure sequence).
	for _, a := range added[:2] {
		if _, err := db.Redeliver(s.CustomerID, s.ID, a.ID); err != nil {
			t.Fatal(err)
		}
	}
	failAll(t, db, added[:2])

	setEnabled(t, db, s, false)
	if _, err := db.RedeliverAll(s.CustomerID, s.ID, 10); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("disabled: got %v, want ErrConflict", err)
	}
	setEnabled(t, db, s, true)
	total := 0
	for {
		n, err := db.RedeliverAll(s.CustomerID, s.ID, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 7 {
		t.Fatalf("got %d redelivered, want 7", total)
	}
	checkSummary(t, db, s, 0, 7, 0, 0)
	if _, err := db.RedeliverAll(uuid.New(), s.ID, 3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other customer: got %v, want ErrNotFound", err)
	}
}

func testFailuresCountedByReason(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 4, s)
	res := func(a store.Added, o store.Outcome, code store.ReasonCode, status int, retryAt time.Time) store.AttemptResult {
		r := attempt(db, a, o, status, retryAt)
		r.Code = code
		return r
	}
	mustRecord(t, db,
		res(added[0], store.Retry, store.ReasonStatus5xx, 500, time.Time{}),              // schedule spent: failure, 5xx
		res(added[1], store.Retry, store.ReasonTimeout, 0, time.Time{}),                  // failure, timeout
		res(added[2], store.Failed, store.ReasonRedirect, 302, time.Time{}),              // failure, redirect
		res(added[3], store.Retry, store.ReasonStatus5xx, 503, clk.Now().Add(time.Hour)), // waiting, last code 5xx
	)
	check := func(step string, want map[store.ReasonCode]uint64) {
		t.Helper()
		sum := mustSummary(t, db, s)
		for _, c := range store.ReasonCodes() {
			if sum.FailedBy[c] != want[c] {
				t.Errorf("%s: failed by %s: got %d, want %d", step, c, sum.FailedBy[c], want[c])
			}
		}
	}
	check("after the attempts", map[store.ReasonCode]uint64{store.ReasonStatus5xx: 1, store.ReasonTimeout: 1, store.ReasonRedirect: 1})
	if e := mustEvent(t, db, s, added[2].ID); e.Reason != store.ReasonRedirect || e.History[len(e.History)-1].Code != store.ReasonRedirect {
		t.Errorf("failed event: got reason %s, last row %+v, want redirect on both", e.Reason, e.History[len(e.History)-1])
	}
	list := func(q store.EventQuery) []uuid.UUID {
		t.Helper()
		q.Limit = 100
		evs, total, err := db.Events(s.CustomerID, s.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		if total != len(evs) {
			t.Errorf("total %d, listed %d", total, len(evs))
		}
		var ids []uuid.UUID
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		return ids
	}
	if got := list(store.EventQuery{Reason: store.ReasonStatus5xx}); len(got) != 2 || got[0] != added[0].ID || got[1] != added[3].ID {
		t.Errorf("reason=status-5xx: got %v, want the two 5xx events", got)
	}
	if got := list(store.EventQuery{Reason: store.ReasonStatus5xx, State: store.Failure}); len(got) != 1 || got[0] != added[0].ID {
		t.Errorf("reason=status-5xx&state=failure: got %v, want the first event", got)
	}
	if got := list(store.EventQuery{Reason: store.ReasonDNS}); len(got) != 0 {
		t.Errorf("reason=dns: got %v, want none", got)
	}

	// Redelivered, the timeout leaves the count; delivered, it loses its code.
	if _, err := db.Redeliver(s.CustomerID, s.ID, added[1].ID); err != nil {
		t.Fatal(err)
	}
	check("after a redelivery", map[store.ReasonCode]uint64{store.ReasonStatus5xx: 1, store.ReasonRedirect: 1})
	mustRecord(t, db, res(added[1], store.Delivered, store.ReasonNone, 200, time.Time{}))
	if e := mustEvent(t, db, s, added[1].ID); e.Reason != store.ReasonNone {
		t.Errorf("delivered event: got reason %s, want none", e.Reason)
	}

	// Disabling fails the waiting event as subscription-disabled.
	setEnabled(t, db, s, false)
	if _, err := db.FailWaiting(s.ID, store.FailWaitingBatch); err != nil {
		t.Fatal(err)
	}
	check("after a disable", map[store.ReasonCode]uint64{store.ReasonStatus5xx: 1, store.ReasonRedirect: 1, store.ReasonSubscriptionDisabled: 1})

	// The janitor's purge takes the failures out of the counts.
	clk.Add(time.Hour)
	if _, err := db.PurgeExpiredEvents(clk.Now(), 100); err != nil {
		t.Fatal(err)
	}
	check("after the purge", map[store.ReasonCode]uint64{})
}

func testRedeliverFailedSelects(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	early := addN(t, db, 3, s)
	clk.Add(time.Hour)
	mid := clk.Now()
	late := addN(t, db, 2, s)
	var rs []store.AttemptResult
	for i, a := range append(append([]store.Added{}, early...), late...) {
		r := attempt(db, a, store.Failed, 500, time.Time{})
		r.Code = store.ReasonStatus5xx
		if i == 4 {
			r.Code, r.StatusCode = store.ReasonStatus4xx, 404
		}
		rs = append(rs, r)
	}
	mustRecord(t, db, rs...)
	for _, tt := range []struct {
		name string
		q    store.FailedQuery
		want int
	}{
		{"before the hour, 4xx", store.FailedQuery{Before: mid, Reason: store.ReasonStatus4xx}, 0},
		{"after the hour, 5xx", store.FailedQuery{After: mid.Add(-time.Nanosecond), Reason: store.ReasonStatus5xx}, 1},
		{"before the hour", store.FailedQuery{Before: mid}, 3},
		{"the rest", store.FailedQuery{}, 1},
	} {
		n, err := db.RedeliverFailed(s.CustomerID, s.ID, tt.q, 100, store.Pace{})
		if err != nil || n != tt.want {
			t.Errorf("%s: got %d, %v, want %d", tt.name, n, err, tt.want)
		}
	}
	if sum := mustSummary(t, db, s); sum.Failed != 0 || sum.Retrying != 5 {
		t.Errorf("got %d failed, %d waiting, want 0 and 5", sum.Failed, sum.Retrying)
	}
}

// testRedeliverFailedPaced: a paced redelivery spreads the events' due
// times from the pace's start (the store's clock when that is earlier), so
// that an event recorded meanwhile is due before those not yet due.
func testRedeliverFailedPaced(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	failAll(t, db, addN(t, db, 5, s))
	start := clk.Now().Add(time.Second)
	if n, err := db.RedeliverFailed(s.CustomerID, s.ID, store.FailedQuery{}, 3, store.Pace{Start: start, Every: 100 * time.Millisecond}); err != nil || n != 3 {
		t.Fatalf("got %d, %v, want 3", n, err)
	}
	evs, next, err := db.DueEvents(s.ID, clk.Now(), 10, nil)
	if err != nil || len(evs) != 0 || !next.Equal(start) {
		t.Fatalf("due now: got %d events, next %v, %v; want none, next %v", len(evs), next, err, start)
	}
	live := addN(t, db, 1, s)
	evs, next, err = db.DueEvents(s.ID, start.Add(150*time.Millisecond), 10, nil)
	if err != nil || len(evs) != 3 || evs[0].ID != live[0].ID || !next.Equal(start.Add(200*time.Millisecond)) {
		t.Fatalf("150 ms after the start: got %d events, next %v, %v; want the live one and two recovered, next %v",
			len(evs), next, err, start.Add(200*time.Millisecond))
	}
	for i, e := range evs[1:] {
		if want := start.Add(time.Duration(i) * 100 * time.Millisecond); !e.DueAt.Equal(want) || e.State != store.AwaitingExecuting {
			t.Errorf("recovered event %d: due %v, %s; want %v, awaiting-executing", i, e.DueAt, e.State, want)
		}
	}
	// A start in the past is the store's clock.
	clk.Add(time.Minute)
	if n, err := db.RedeliverFailed(s.CustomerID, s.ID, store.FailedQuery{}, 3, store.Pace{Start: start, Every: time.Second}); err != nil || n != 2 {
		t.Fatalf("got %d, %v, want the last 2", n, err)
	}
	evs, next, err = db.DueEvents(s.ID, clk.Now(), 10, nil)
	if err != nil || len(evs) != 5 || !next.Equal(clk.Now().Add(time.Second)) {
		t.Fatalf("a minute later: got %d events, next %v, %v; want 5, next %v", len(evs), next, err, clk.Now().Add(time.Second))
	}
	if sum := mustSummary(t, db, s); sum.Failed != 0 || sum.Retrying != 6 {
		t.Errorf("got %d failed, %d waiting, want 0 and 6", sum.Failed, sum.Retrying)
	}
}
