package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

func init() {
	register(map[string]func(*testing.T, Opener){
		"AttemptDetailsKeepTheLastResponses": testAttemptDetailsKeepTheLastResponses,
		"AttemptDetailsOnlyWhenWorthKeeping": testAttemptDetailsOnlyWhenWorthKeeping,
		"AttemptDetailsGoWithTheirEvent":     testAttemptDetailsGoWithTheirEvent,
		"AttemptDetailsOfFailuresNoBody":     testAttemptDetailsOfFailuresNoBody,
		"AttemptOutcomeRowAtTheAttemptsEnd":  testAttemptOutcomeRowAtTheAttemptsEnd,
		"SearchEventsByTxnAndSubject":        testSearchEventsByTxnAndSubject,
		"SearchEventsWithConditionsAndOrder": testSearchEventsWithConditionsAndOrder,
	})
}

// failedAttempt is attempt n of a, a 500 with headers and a body that
// name n.
func failedAttempt(db store.Store, a store.Added, n int) store.AttemptResult {
	r := attempt(db, a, store.Retry, 500, db.Now().Add(time.Hour))
	r.Headers = []store.Header{{Name: "Content-Type", Value: "text/plain"}, {Name: "X-Attempt", Value: fmt.Sprint(n)}}
	r.Body = fmt.Appendf(nil, "boom %d", n)
	r.Duration = 30 * time.Millisecond
	return r
}

func mustAttempts(t *testing.T, db store.Store, s store.Subscription, id uuid.UUID) (store.Event, []store.AttemptDetail) {
	t.Helper()
	e, ds, err := db.EventAttempts(s.CustomerID, s.ID, id)
	if err != nil {
		t.Fatalf("event attempts %s: %v", id, err)
	}
	return e, ds
}

// testAttemptDetailsKeepTheLastResponses: an event attempted more times
// than store.KeptAttemptDetails keeps the responses of its last ones, in
// attempt order, each with its status, headers and body.
func testAttemptDetailsKeepTheLastResponses(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	a := addN(t, db, 1, s)[0]
	const attempts = store.KeptAttemptDetails + 2
	for n := 1; n <= attempts; n++ {
		clk.Add(time.Second)
		mustRecord(t, db, failedAttempt(db, a, n))
	}
	e, ds := mustAttempts(t, db, s, a.ID)
	if e.ID != a.ID || e.Attempts != attempts {
		t.Fatalf("got event %s with %d attempts, want %s with %d", e.ID, e.Attempts, a.ID, attempts)
	}
	var got []int
	for _, d := range ds {
		got = append(got, d.Attempt)
		want := []store.Header{{Name: "Content-Type", Value: "text/plain"}, {Name: "X-Attempt", Value: fmt.Sprint(d.Attempt)}}
		if d.StatusCode != 500 || !slices.Equal(d.Headers, want) || string(d.Body) != fmt.Sprintf("boom %d", d.Attempt) {
			t.Errorf("attempt %d: got status %d headers %v body %q, want 500, %v and its body", d.Attempt, d.StatusCode, d.Headers, d.Body, want)
		}
	}
	var want []int
	for n := attempts - store.KeptAttemptDetails + 1; n <= attempts; n++ {
		want = append(want, n)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got details of attempts %v, want %v (the last %d)", got, want, store.KeptAttemptDetails)
	}

	// Another event's details stay apart; an unknown id is not found.
	b := addN(t, db, 1, s)[0]
	if _, ds := mustAttempts(t, db, s, b.ID); len(ds) != 0 {
		t.Errorf("got %d details for an event never attempted, want none", len(ds))
	}
	if _, _, err := db.EventAttempts(s.CustomerID, s.ID, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown event: got %v, want ErrNotFound", err)
	}
	if _, _, err := db.EventAttempts(uuid.New(), s.ID, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another customer: got %v, want ErrNotFound", err)
	}
}

// testAttemptDetailsOnlyWhenWorthKeeping: an attempt delivered with an
// empty body and one without a response keep no detail (the event's
// response and history have all there is); a delivered attempt with a
// body keeps it.
func testAttemptDetailsOnlyWhenWorthKeeping(t *testing.T, open Opener) {
	db, _ := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 3, s)
	plain, noAnswer, withBody := added[0], added[1], added[2]
	r1 := attempt(db, plain, store.Delivered, 204, time.Time{})
	r2 := attempt(db, noAnswer, store.Retry, 0, db.Now().Add(time.Hour))
	r2.Headers, r2.Reason = nil, "timeout"
	r3 := attempt(db, withBody, store.Delivered, 200, time.Time{})
	r3.Body = []byte(`{"ok":true}`)
	mustRecord(t, db, r1, r2, r3)
	for _, a := range []store.Added{plain, noAnswer} {
		if _, ds := mustAttempts(t, db, s, a.ID); len(ds) != 0 {
			t.Errorf("event %s: got details %+v, want none", a.ID, ds)
		}
	}
	_, ds := mustAttempts(t, db, s, withBody.ID)
	if len(ds) != 1 || ds[0].Attempt != 1 || ds[0].StatusCode != 200 || !bytes.Equal(ds[0].Body, r3.Body) {
		t.Fatalf("got details %+v, want attempt 1, 200 and its body", ds)
	}
}

// testAttemptDetailsOfFailuresNoBody: failed attempts answered without a
// body keep their status and headers like those with one (the last from
// the event's response, the earlier ones stored when the next came): after
// each attempt, the last store.KeptAttemptDetails show, each its own; one
// with a body among them keeps it.
func testAttemptDetailsOfFailuresNoBody(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	a := addN(t, db, 1, s)[0]
	const attempts = store.KeptAttemptDetails + 2
	const withBody = 2 // this attempt's response has a body
	for n := 1; n <= attempts; n++ {
		clk.Add(time.Second)
		r := failedAttempt(db, a, n)
		if n != withBody {
			r.Body = nil
		}
		mustRecord(t, db, r)
		_, ds := mustAttempts(t, db, s, a.ID)
		var got, want []int
		for k := max(1, n-store.KeptAttemptDetails+1); k <= n; k++ {
			want = append(want, k)
		}
		for _, d := range ds {
			got = append(got, d.Attempt)
			wantBody := ""
			if d.Attempt == withBody {
				wantBody = fmt.Sprintf("boom %d", withBody)
			}
			wantHeaders := []store.Header{{Name: "Content-Type", Value: "text/plain"}, {Name: "X-Attempt", Value: fmt.Sprint(d.Attempt)}}
			if d.StatusCode != 500 || !slices.Equal(d.Headers, wantHeaders) || string(d.Body) != wantBody {
				t.Errorf("after attempt %d: attempt %d has status %d headers %v body %q, want 500, %v, %q", n, d.Attempt, d.StatusCode, d.Headers, d.Body, wantHeaders, wantBody)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("after attempt %d: got details of attempts %v, want %v", n, got, want)
		}
	}
	// Delivered at last: the failures before keep theirs.
	clk.Add(time.Second)
	mustRecord(t, db, attempt(db, a, store.Delivered, 204, time.Time{}))
	if _, ds := mustAttempts(t, db, s, a.ID); len(ds) != store.KeptAttemptDetails || ds[len(ds)-1].Attempt != attempts {
		t.Errorf("after a delivery: got details %+v, want the last %d failures up to attempt %d", ds, store.KeptAttemptDetails, attempts)
	}
}

// testAttemptDetailsGoWithTheirEvent: the janitor's purge and the purge of
// a deleted subscription remove the events with their details: a new
// subscription's event with the same sequence position has none.
func testAttemptDetailsGoWithTheirEvent(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	a := addN(t, db, 1, s)[0]
	mustRecord(t, db, failedAttempt(db, a, 1))
	clk.Add(time.Hour)
	if n, err := db.PurgeExpiredEvents(clk.Now(), 10); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want 1", n, err)
	}
	if _, _, err := db.EventAttempts(s.CustomerID, s.ID, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("purged event: got %v, want ErrNotFound", err)
	}

	d := addEvSub(t, db, uuid.New(), "d")
	b := addN(t, db, 1, d)[0]
	mustRecord(t, db, failedAttempt(db, b, 1))
	if err := db.DeleteSubscription(d.CustomerID, d.ID); err != nil {
		t.Fatal(err)
	}
	for {
		_, keys, err := db.PurgeDeleted(d.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		if keys == 0 {
			break
		}
	}
	if _, _, err := db.EventAttempts(d.CustomerID, d.ID, b.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("event of a deleted subscription: got %v, want ErrNotFound", err)
	}
}

// testAttemptOutcomeRowAtTheAttemptsEnd: the history row that ends an
// attempt is stamped when the attempt ended, so the attempt's duration is
// the time from its executing row to that row.
func testAttemptOutcomeRowAtTheAttemptsEnd(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 3, s)
	ok := attempt(db, added[0], store.Delivered, 204, time.Time{})
	ok.Duration = 1500 * time.Millisecond
	retry := failedAttempt(db, added[1], 1)
	fail := attempt(db, added[2], store.Failed, 410, time.Time{})
	fail.Duration = 250 * time.Millisecond
	clk.Add(5 * time.Second) // recorded later than the attempts ended
	mustRecord(t, db, ok, retry, fail)
	for i, want := range []time.Duration{ok.Duration, retry.Duration, fail.Duration} {
		e := mustEvent(t, db, s, added[i].ID)
		if len(e.History) != 3 {
			t.Fatalf("event %d: got history %v, want three rows", i, historyStates(e))
		}
		if got := e.History[2].At.Sub(e.History[1].At); got != want {
			t.Errorf("event %d: got %v between the executing row and the outcome, want the attempt's %v", i, got, want)
		}
	}
}

// searchSub adds events with the given txns and subjects (a nested "sub"
// and a member named "Sub" must not match a search by subject).
func searchSub(t *testing.T, db store.Store, clk *Clock, rows [][2]string) (store.Subscription, []store.Added) {
	t.Helper()
	s := addEvSub(t, db, uuid.New(), "search")
	var added []store.Added
	for _, r := range rows {
		clk.Add(time.Second)
		a, err := db.AddEvents([]store.NewEvent{{Type: "entityCreated", Txn: r[0], Toe: 1,
			Payload: fmt.Appendf(nil, `{"entityType":"user","sub":%q,"inner":{"sub":"nested"},"Sub":"upper"}`, r[1])}},
			[]store.Delivery{{SubscriptionID: s.ID}})
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, a...)
	}
	return s, added
}

func ids(evs []store.Event) []uuid.UUID {
	var out []uuid.UUID
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// testSearchEventsByTxnAndSubject: Txn and Subject find exactly the events
// whose txn, or whose event object's top-level "sub", is the one asked.
func testSearchEventsByTxnAndSubject(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	txn := uuid.NewString()
	s, added := searchSub(t, db, clk, [][2]string{
		{uuid.NewString(), "u-1"}, {txn, "u-2"}, {uuid.NewString(), "u-1"}, {uuid.NewString(), "a&b<c>"},
	})
	other, _ := searchSub(t, db, clk, [][2]string{{txn, "u-1"}}) // the same values in another subscription
	cases := []struct {
		name string
		q    store.EventQuery
		want []uuid.UUID
	}{
		{"txn", store.EventQuery{Txn: txn}, []uuid.UUID{added[1].ID}},
		{"subject", store.EventQuery{Subject: "u-1"}, []uuid.UUID{added[0].ID, added[2].ID}},
		{"subject with characters JSON may escape", store.EventQuery{Subject: "a&b<c>"}, []uuid.UUID{added[3].ID}},
		{"txn and subject", store.EventQuery{Txn: txn, Subject: "u-1"}, nil},
		{"a nested sub is not the subject", store.EventQuery{Subject: "nested"}, nil},
		{"names are exact", store.EventQuery{Subject: "upper"}, nil},
		{"no such txn", store.EventQuery{Txn: uuid.NewString()}, nil},
		{"a prefix is not a match", store.EventQuery{Subject: "u-"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.q.Limit = 10
			evs, total, err := db.Events(s.CustomerID, s.ID, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(evs), c.want) || total != len(c.want) {
				t.Errorf("got %v (total %d), want %v", ids(evs), total, c.want)
			}
		})
	}
	if evs, total, err := db.Events(other.CustomerID, other.ID, store.EventQuery{Txn: txn, Limit: 10}); err != nil || total != 1 || len(evs) != 1 {
		t.Errorf("the other subscription: got %d events (total %d), %v; want its one", len(evs), total, err)
	}

	// Any valid JSON object is recorded and searched, a \u0000 escape too.
	odd, err := db.AddEvents([]store.NewEvent{{Type: "entityCreated", Toe: 1, Payload: []byte(`{"x":"a\u0000b","sub":"nul"}`)}},
		[]store.Delivery{{SubscriptionID: s.ID}})
	if err != nil {
		t.Fatalf("record an event with a \\u0000 escape: %v", err)
	}
	if evs, _, err := db.Events(s.CustomerID, s.ID, store.EventQuery{Subject: "nul", Limit: 10}); err != nil || !slices.Equal(ids(evs), []uuid.UUID{odd[0].ID}) {
		t.Errorf("search the event with a \\u0000 escape: got %v, %v; want it", ids(evs), err)
	}
}

// testSearchEventsWithConditionsAndOrder: a search keeps the list's other
// conditions, its order and its paging.
func testSearchEventsWithConditionsAndOrder(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	var rows [][2]string
	for range 5 {
		rows = append(rows, [2]string{uuid.NewString(), "u-9"})
	}
	s, added := searchSub(t, db, clk, rows)
	mustRecord(t, db, attempt(db, added[1], store.Delivered, 204, time.Time{}), attempt(db, added[3], store.Delivered, 204, time.Time{}))
	q := func(q store.EventQuery) ([]uuid.UUID, int) {
		t.Helper()
		evs, total, err := db.Events(s.CustomerID, s.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		return ids(evs), total
	}
	all := []uuid.UUID{added[0].ID, added[1].ID, added[2].ID, added[3].ID, added[4].ID}
	if got, total := q(store.EventQuery{Subject: "u-9", Limit: 2, Offset: 1}); !slices.Equal(got, all[1:3]) || total != 5 {
		t.Errorf("oldest first, page 2 of 2: got %v (total %d), want %v (5)", got, total, all[1:3])
	}
	if got, total := q(store.EventQuery{Subject: "u-9", Desc: true, Limit: 2}); !slices.Equal(got, []uuid.UUID{all[4], all[3]}) || total != 5 {
		t.Errorf("newest first: got %v (total %d), want the last two, newest first", got, total)
	}
	if got, total := q(store.EventQuery{Subject: "u-9", State: store.Success, Limit: 10}); !slices.Equal(got, []uuid.UUID{all[1], all[3]}) || total != 2 {
		t.Errorf("with state success: got %v (total %d), want the two delivered", got, total)
	}
	e2 := mustEvent(t, db, s, added[2].ID)
	if got, total := q(store.EventQuery{Subject: "u-9", After: e2.CreatedAt, Limit: 10}); !slices.Equal(got, all[3:]) || total != 2 {
		t.Errorf("after the third: got %v (total %d), want the last two", got, total)
	}
	if got, total := q(store.EventQuery{Subject: "u-9", Before: e2.CreatedAt, Desc: true, Limit: 10}); !slices.Equal(got, []uuid.UUID{all[1], all[0]}) || total != 2 {
		t.Errorf("before the third, newest first: got %v (total %d), want the first two", got, total)
	}
}
