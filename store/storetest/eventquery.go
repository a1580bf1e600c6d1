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
		"EventsQuery":                       testEventsQuery,
		"ExportedEventsRedeliverAndSummary": testExportedEventsRedeliverAndSummary,
		"EventsTotalFromCounts":             testEventsTotalFromCounts,
		"EventsNewestFirstAndType":          testEventsNewestFirstAndType,
	})
}

func testEventsQuery(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	t0 := clk.Now()
	first := addN(t, db, 3, s)
	clk.Add(time.Minute)
	second := addN(t, db, 3, s)
	mustRecord(t, db, attempt(db, first[0], store.Delivered, 200, time.Time{}), attempt(db, second[0], store.Failed, 302, time.Time{}))

	ids := func(evs []store.Event) []uuid.UUID {
		var out []uuid.UUID
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	cases := []struct {
		name  string
		q     store.EventQuery
		total int
		want  []uuid.UUID
	}{
		{"all", store.EventQuery{Limit: 100}, 6, []uuid.UUID{first[0].ID, first[1].ID, first[2].ID, second[0].ID, second[1].ID, second[2].ID}},
		{"page", store.EventQuery{Offset: 2, Limit: 2}, 6, []uuid.UUID{first[2].ID, second[0].ID}},
		{"state", store.EventQuery{State: store.AwaitingExecuting, Limit: 100}, 4, []uuid.UUID{first[1].ID, first[2].ID, second[1].ID, second[2].ID}},
		{"success", store.EventQuery{State: store.Success, Limit: 100}, 1, []uuid.UUID{first[0].ID}},
		{"after", store.EventQuery{After: t0, Limit: 100}, 3, []uuid.UUID{second[0].ID, second[1].ID, second[2].ID}},
		{"before", store.EventQuery{Before: t0.Add(time.Second), Limit: 100}, 3, []uuid.UUID{first[0].ID, first[1].ID, first[2].ID}},
		{"filter", store.EventQuery{Limit: 100, Filter: func(seq uint64, st store.State) bool { return seq == store.EventSeq(second[2].ID) }}, 1, []uuid.UUID{second[2].ID}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, total, err := db.Events(s.CustomerID, s.ID, c.q)
			if err != nil {
				t.Fatal(err)
			}
			got := ids(evs)
			if total != c.total || len(got) != len(c.want) {
				t.Fatalf("got total %d and %d events, want %d and %d", total, len(got), c.total, len(c.want))
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("event %d: got %s, want %s", i, got[i], c.want[i])
				}
			}
		})
	}
	if _, _, err := db.Events(uuid.New(), s.ID, store.EventQuery{Limit: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other customer: got %v, want ErrNotFound", err)
	}
}

func testExportedEventsRedeliverAndSummary(t *testing.T, open Opener) {
	db, _ := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 4, s)
	failAll(t, db, added[:3])
	job := exportFailures(t, db, s, store.ExportCompleted)
	checkSummary(t, db, s, 0, 1, 3, 0)
	if e := mustEvent(t, db, s, added[0].ID); !e.ExportedAt.Equal(job.CompletedAt) {
		t.Errorf("got exportedAt %v, want the job's completion %v", e.ExportedAt, job.CompletedAt)
	}

	// An exported event redelivered and failed again is not exportable
	// again, and redeliver-all still finds it.
	if _, err := db.Redeliver(s.CustomerID, s.ID, added[0].ID); err != nil {
		t.Fatal(err)
	}
	failAll(t, db, added[:1])
	if e := mustEvent(t, db, s, added[0].ID); e.State != store.Failure || e.FailSeq != 0 || e.ExportedAt.IsZero() {
		t.Errorf("got %s failSeq %d exportedAt %v, want failure 0 and kept", e.State, e.FailSeq, e.ExportedAt)
	}
	failAll(t, db, added[3:])
	checkSummary(t, db, s, 0, 0, 4, 1)

	// While an export runs, its events keep their state.
	exportFailures(t, db, s, store.ExportProcessing)
	if _, err := db.Redeliver(s.CustomerID, s.ID, added[3].ID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("redeliver during export: got %v, want ErrConflict", err)
	}
	if _, err := db.RedeliverAll(s.CustomerID, s.ID, 10); !errors.Is(err, store.ErrConflict) {
		t.Errorf("redeliver all during export: got %v, want ErrConflict", err)
	}
	if _, err := db.Redeliver(s.CustomerID, s.ID, added[1].ID); err != nil {
		t.Errorf("redeliver of an event outside the export: got %v, want nil", err)
	}
}

func testEventsTotalFromCounts(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	scan := func() int {
		t.Helper()
		_, n, err := db.Events(s.CustomerID, s.ID, store.EventQuery{Limit: 1, Filter: func(uint64, store.State) bool { return true }})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	check := func(step string, want int) {
		t.Helper()
		evs, n, err := db.Events(s.CustomerID, s.ID, store.EventQuery{Offset: 1, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if n != want || scan() != want {
			t.Errorf("%s: got total %d (a scan counts %d), want %d", step, n, scan(), want)
		}
		if wantPage := min(2, max(want-1, 0)); len(evs) != wantPage {
			t.Errorf("%s: got %d events on the page, want %d", step, len(evs), wantPage)
		}
	}
	check("empty", 0)
	old := addN(t, db, 4, s)
	check("added", 4)
	mustRecord(t, db, attempt(db, old[0], store.Delivered, 204, time.Time{}), attempt(db, old[1], store.Retry, 503, clk.Now().Add(time.Second)), attempt(db, old[2], store.Failed, 301, time.Time{}))
	check("attempted", 4)
	if _, err := db.Redeliver(s.CustomerID, s.ID, old[2].ID); err != nil {
		t.Fatal(err)
	}
	check("redelivered", 4)
	clk.Add(8 * 24 * time.Hour)
	addN(t, db, 2, s)
	check("more added", 6)
	if _, err := db.PurgeExpiredEvents(clk.Now().Add(-7*24*time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	check("purged", 2)
}

func testEventsNewestFirstAndType(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	other := addEvSub(t, db, uuid.New(), "other")
	first := addN(t, db, 2, s, other)
	clk.Add(time.Minute)
	t1 := clk.Now()
	deleted, err := db.AddEvents([]store.NewEvent{{Type: "entityDeleted", Txn: uuid.NewString(), Toe: 1, Payload: []byte(`{"sub":"d"}`)}},
		[]store.Delivery{{SubscriptionID: s.ID}, {SubscriptionID: other.ID}})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	last := addN(t, db, 2, s, other)
	mine := func(as []store.Added) []store.Added {
		var out []store.Added
		for _, a := range as {
			if a.SubscriptionID == s.ID {
				out = append(out, a)
			}
		}
		return out
	}
	f, d, l := mine(first), mine(deleted), mine(last)

	cases := []struct {
		name  string
		q     store.EventQuery
		total int
		want  []store.Added
	}{
		{"newest first", store.EventQuery{Desc: true, Limit: 100}, 5, []store.Added{l[1], l[0], d[0], f[1], f[0]}},
		{"newest first, page 2", store.EventQuery{Desc: true, Offset: 2, Limit: 2}, 5, []store.Added{d[0], f[1]}},
		{"newest first, after", store.EventQuery{Desc: true, After: t1.Add(-time.Second), Limit: 100}, 3, []store.Added{l[1], l[0], d[0]}},
		{"newest first, before", store.EventQuery{Desc: true, Before: t1.Add(time.Second), Limit: 100}, 3, []store.Added{d[0], f[1], f[0]}},
		{"type", store.EventQuery{Type: "entityDeleted", Limit: 100}, 1, []store.Added{d[0]}},
		{"type, newest first", store.EventQuery{Type: "entityCreated", Desc: true, Limit: 100}, 4, []store.Added{l[1], l[0], f[1], f[0]}},
		{"type none", store.EventQuery{Type: "entityUpdated", Limit: 100}, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, total, err := db.Events(s.CustomerID, s.ID, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if total != c.total || len(evs) != len(c.want) {
				t.Fatalf("got total %d and %d events, want %d and %d", total, len(evs), c.total, len(c.want))
			}
			for i := range evs {
				if evs[i].ID != c.want[i].ID {
					t.Errorf("event %d: got %s (%s), want %s", i, evs[i].ID, evs[i].Type, c.want[i].ID)
				}
			}
		})
	}
	// Whichever of the two subscriptions' keys sort first, each walk
	// stays within its own: the other's newest event is its last delivery.
	evs, total, err := db.Events(other.CustomerID, other.ID, store.EventQuery{Desc: true, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if total != 5 || len(evs) != 5 || evs[0].ID != last[3].ID || evs[0].SubscriptionID != other.ID {
		t.Errorf("other subscription newest first: got total %d, %d events, first %v; want 5, 5, %s", total, len(evs), evs[0].ID, last[3].ID)
	}
}
