package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

func init() {
	register(map[string]func(*testing.T, Opener){
		"AddEventsFanOutAndStates":             testAddEventsFanOutAndStates,
		"AddEventsConcurrentCallsShareCommits": testAddEventsConcurrentCallsShareCommits,
		"DueEventsAndSubscriptions":            testDueEventsAndSubscriptions,
		"Backlog":                              testBacklog,
	})
}

func testAddEventsFanOutAndStates(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	cust := uuid.New()
	on := addEvSub(t, db, cust, "on")
	off := addEvSub(t, db, cust, "off")
	setEnabled(t, db, off, false)
	gone := store.Subscription{ID: uuid.New()}

	events := []store.NewEvent{
		{Type: "entityCreated", Txn: "t1", Toe: 11, Payload: []byte(`{"sub":"a"}`)},
		{Type: "entityDeleted", Txn: "t2", Toe: 12, Payload: []byte(`{"sub":"b"}`)},
	}
	ds := []store.Delivery{{SubscriptionID: on.ID, Event: 0}, {SubscriptionID: off.ID, Event: 0}, {SubscriptionID: gone.ID, Event: 0}, {SubscriptionID: on.ID, Event: 1}}
	added, err := db.AddEvents(events, ds)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 3 {
		t.Fatalf("got %d added, want 3 (the unknown subscription dropped)", len(added))
	}
	want := []struct {
		sub   uuid.UUID
		state store.State
	}{{on.ID, store.AwaitingExecuting}, {off.ID, store.Failure}, {on.ID, store.AwaitingExecuting}}
	for i, w := range want {
		if added[i].SubscriptionID != w.sub || added[i].State != w.state {
			t.Errorf("added[%d]: got %s %s, want %s %s", i, added[i].SubscriptionID, added[i].State, w.sub, w.state)
		}
	}
	if store.EventSeq(added[0].ID) >= store.EventSeq(added[2].ID) {
		t.Errorf("got sequence %d then %d, want increasing", store.EventSeq(added[0].ID), store.EventSeq(added[2].ID))
	}

	e := mustEvent(t, db, on, added[2].ID)
	if e.Type != "entityDeleted" || e.Txn != "t2" || e.Toe != 12 || string(e.Payload) != `{"sub":"b"}` || e.Endpoint != on.Endpoint {
		t.Errorf("got event %+v, want the second event to %s", e, on.Endpoint)
	}
	if !e.CreatedAt.Equal(clk.Now()) || !e.DueAt.Equal(clk.Now()) || e.JWS != "" || e.Attempts != 0 {
		t.Errorf("got createdAt %v dueAt %v jws %q attempts %d, want now, now, empty, 0", e.CreatedAt, e.DueAt, e.JWS, e.Attempts)
	}
	f := mustEvent(t, db, off, added[1].ID)
	if !sameStates(historyStates(f), []store.State{store.AwaitingExecuting, store.Failure}) || f.History[1].Reason != "subscription disabled" {
		t.Errorf("got disabled history %+v, want awaiting-executing then failure (subscription disabled)", f.History)
	}
	checkSummary(t, db, on, 0, 2, 0, 0)
	checkSummary(t, db, off, 0, 0, 1, 1)

	// An id of another subscription, or a forged id with a real sequence, is not found.
	if _, err := db.Event(cust, off.ID, added[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("event of another subscription: got %v, want ErrNotFound", err)
	}
	forged := store.EventID(store.EventSeq(added[0].ID), [10]byte{1, 2, 3})
	if _, err := db.Event(cust, on.ID, forged); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("forged id: got %v, want ErrNotFound", err)
	}
	if _, err := db.Event(uuid.New(), on.ID, added[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other customer: got %v, want ErrNotFound", err)
	}
}

func testAddEventsConcurrentCallsShareCommits(t *testing.T, open Opener) {
	db, _ := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "busy")
	var wg sync.WaitGroup
	ids := make(chan uuid.UUID, 400)
	for range 40 {
		wg.Go(func() {
			for _, a := range addN(t, db, 10, s) {
				ids <- a.ID
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[uuid.UUID]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("id %s handed out twice", id)
		}
		seen[id] = true
	}
	if len(seen) != 400 {
		t.Fatalf("got %d ids, want 400", len(seen))
	}
	_, total, err := db.Events(s.CustomerID, s.ID, store.EventQuery{Limit: 1})
	if err != nil || total != 400 {
		t.Fatalf("got total %d (%v), want 400", total, err)
	}
	checkSummary(t, db, s, 0, 400, 0, 0)
}

func testDueEventsAndSubscriptions(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	cust := uuid.New()
	a := addEvSub(t, db, cust, "a")
	b := addEvSub(t, db, cust, "b")
	addN(t, db, 3, a)
	clk.Add(time.Second)
	addN(t, db, 1, b)

	due, err := db.DueSubscriptions()
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 2 || !due[a.ID].Equal(clk.Now().Add(-time.Second)) || !due[b.ID].Equal(clk.Now()) {
		t.Fatalf("got due subscriptions %v, want a at now-1s and b at now", due)
	}

	evs, next, err := db.DueEvents(a.ID, clk.Now(), 2, nil)
	if err != nil || len(evs) != 2 {
		t.Fatalf("got %d due events (%v), want 2", len(evs), err)
	}
	if evs[0].Seq >= evs[1].Seq || next.IsZero() {
		t.Errorf("got seqs %d, %d and next %v, want oldest first and a next time", evs[0].Seq, evs[1].Seq, next)
	}
	skip := func(seq uint64) bool { return seq == evs[0].Seq }
	evs2, next, _ := db.DueEvents(a.ID, clk.Now(), 10, skip)
	if len(evs2) != 2 || evs2[0].Seq != evs[1].Seq || !next.IsZero() {
		t.Errorf("with a skip: got %d events and next %v, want the other 2 and no next", len(evs2), next)
	}

	// A retry in the future is not due yet; next tells when.
	retryAt := clk.Now().Add(time.Minute)
	bEvents, _, _ := db.DueEvents(b.ID, clk.Now(), 10, nil)
	if err := db.RecordAttempts([]store.AttemptResult{{SubscriptionID: b.ID, Seq: bEvents[0].Seq, StartedAt: clk.Now(), JWS: "x.y.z", Outcome: store.Retry, RetryAt: retryAt, StatusCode: 503, Reason: "status 503"}}); err != nil {
		t.Fatal(err)
	}
	evs, next, _ = db.DueEvents(b.ID, clk.Now(), 10, nil)
	if len(evs) != 0 || !next.Equal(retryAt) {
		t.Errorf("got %d due and next %v, want 0 and %v", len(evs), next, retryAt)
	}
	evs, _, _ = db.DueEvents(b.ID, retryAt, 10, nil)
	if len(evs) != 1 || evs[0].State != store.AwaitingRetry || evs[0].JWS != "x.y.z" {
		t.Errorf("at the retry time: got %+v, want the event awaiting-retry with its token", evs)
	}

	// A deleted subscription is no longer due.
	if err := db.DeleteSubscription(cust, a.ID); err != nil {
		t.Fatal(err)
	}
	due, _ = db.DueSubscriptions()
	if _, ok := due[a.ID]; ok || len(due) != 1 {
		t.Errorf("after delete: got due %v, want only b", due)
	}
}

func testBacklog(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
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
