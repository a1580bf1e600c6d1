package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// The janitor's upkeep: expired events and export jobs, and the data of
// deleted subscriptions.
func init() {
	register(map[string]func(t *testing.T, open Opener){
		"ExportJanitorQueries":     testExportJanitorQueries,
		"PurgeExpiredEvents":       testPurgeExpiredEvents,
		"DeletedSubscriptionPurge": testDeletedSubscriptionPurge,
		"PurgeLeavesOthersAlone":   testPurgeLeavesOthersAlone,
		"UpkeepZeroLimit":          testUpkeepZeroLimit,
	})
}

// upkeepSub creates an enabled subscription of customer to every event type.
func upkeepSub(t *testing.T, db store.Store, customer uuid.UUID, title string) store.Subscription {
	t.Helper()
	s := store.Subscription{
		ID: uuid.New(), CustomerID: customer, Title: title, Endpoint: "https://listener.example/" + title,
		Events: []string{"entityCreated", "entityUpdated", "entityDeleted"}, Enabled: true, CreatedAt: db.Now(), UpdatedAt: db.Now(),
	}
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	return s
}

// addEach records n events for each of subs and returns the added records.
func addEach(t *testing.T, db store.Store, n int, subs ...store.Subscription) []store.Added {
	t.Helper()
	var events []store.NewEvent
	var ds []store.Delivery
	for i := range n {
		events = append(events, store.NewEvent{Type: "entityCreated", Txn: uuid.NewString(), Toe: int64(1000 + i), Payload: fmt.Appendf(nil, `{"sub":"u%d"}`, i)})
		for _, s := range subs {
			ds = append(ds, store.Delivery{SubscriptionID: s.ID, Event: i})
		}
	}
	added, err := db.AddEvents(events, ds)
	if err != nil {
		t.Fatalf("add events: %v", err)
	}
	return added
}

// attemptsOf fails (outcome Failed) or delivers (Delivered) every event of
// added through an attempt.
func attemptsOf(t *testing.T, db store.Store, added []store.Added, o store.Outcome, status int, code store.ReasonCode) {
	t.Helper()
	var rs []store.AttemptResult
	for _, a := range added {
		rs = append(rs, store.AttemptResult{SubscriptionID: a.SubscriptionID, Seq: store.EventSeq(a.ID), StartedAt: db.Now(), JWS: "h.p.s",
			Outcome: o, StatusCode: status, Reason: "status", Code: code})
	}
	if err := db.RecordAttempts(rs); err != nil {
		t.Fatalf("record attempts: %v", err)
	}
}

// summaryIs fails the test unless s's summary has these counts.
func summaryIs(t *testing.T, db store.Store, s store.Subscription, succeeded, retrying, failed, exportable uint64) {
	t.Helper()
	got, err := db.Summary(s.CustomerID, s.ID)
	if err != nil {
		t.Fatalf("summary: %v", err)
	}
	if got.Succeeded != succeeded || got.Retrying != retrying || got.Failed != failed || got.Exportable != exportable {
		t.Fatalf("got summary succeeded=%d retrying=%d failed=%d exportable=%d, want %d %d %d %d",
			got.Succeeded, got.Retrying, got.Failed, got.Exportable, succeeded, retrying, failed, exportable)
	}
}

func testExportJanitorQueries(t *testing.T, open Opener) {
	db, clk := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	addFailed(t, db, s, 3)
	done, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	completeJob(t, db, done)
	addFailed(t, db, s, 1)
	canceled, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CancelExport(s.CustomerID, s.ID, canceled.ID); err != nil {
		t.Fatal(err)
	}
	active, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	if _, err := db.CreateExport(s.CustomerID, uuid.New(), "", store.ScopeSubscription, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown subscription: got %v, want ErrNotFound", err)
	}
	if _, err := db.CreateExport(uuid.New(), s.ID, "", store.ScopeSubscription, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another customer's subscription: got %v, want ErrNotFound", err)
	}

	byID, err := db.ExportsByID([]uuid.UUID{done.ID, canceled.ID, uuid.New()})
	if err != nil {
		t.Fatal(err)
	}
	if len(byID) != 2 || byID[done.ID].Key != "key/"+done.ID.String() || byID[canceled.ID].State != store.ExportCanceled {
		t.Errorf("got %v, want the completed and the canceled job", byID)
	}

	if young, err := db.ExpiredExports(clk.Now().Add(-2*time.Hour), 10); err != nil || len(young) != 0 {
		t.Errorf("before the jobs were created: got %d expired jobs, %v; want none", len(young), err)
	}
	expired, err := db.ExpiredExports(clk.Now().Add(-30*time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	gotIDs := []uuid.UUID{}
	for _, j := range expired {
		gotIDs = append(gotIDs, j.ID)
	}
	if len(expired) != 2 || !slices.Contains(gotIDs, done.ID) || !slices.Contains(gotIDs, canceled.ID) {
		t.Fatalf("got %d expired jobs, want the completed and the canceled one", len(expired))
	}
	if limited, _ := db.ExpiredExports(clk.Now(), 1); len(limited) != 1 {
		t.Errorf("with limit 1: got %d jobs", len(limited))
	}
	if n, err := db.DeleteExports([]uuid.UUID{done.ID, canceled.ID, uuid.New()}); err != nil || n != 2 {
		t.Fatalf("DeleteExports: got %d, %v; want 2", n, err)
	}
	if n, err := db.DeleteExports([]uuid.UUID{done.ID}); err != nil || n != 0 {
		t.Errorf("DeleteExports again: got %d, %v; want 0", n, err)
	}
	if list, _ := db.Exports(s.CustomerID, s.ID, time.Time{}); len(list) != 1 || list[0].ID != active.ID {
		t.Errorf("after the delete: got %d jobs, want the active one", len(list))
	}
	if _, err := db.ExportByID(done.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deleted job: got %v, want ErrNotFound", err)
	}
	// The watermark stays: deleting a job does not make its events
	// exportable again. The one exportable event is the active job's.
	if n := exportableOf(t, db, s); n != 1 {
		t.Errorf("got %d exportable, want 1", n)
	}
	if jobs, err := db.DeletedSubscriptionExports(s.ID, 10); err != nil || len(jobs) != 0 {
		t.Errorf("jobs of a subscription that exists: got %v, %v; want none", jobs, err)
	}

	// A deleted subscription: events first, then jobs, then the tombstone.
	if err := db.DeleteSubscription(s.CustomerID, s.ID); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.DropTombstone(s.ID); err != nil || ok {
		t.Errorf("drop with events left: got %v, %v; want false", ok, err)
	}
	for {
		_, n, err := db.PurgeDeleted(s.ID, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n > 2 {
			t.Fatalf("got a batch of %d keys, want at most 2", n)
		}
		if n == 0 {
			break
		}
	}
	if ok, _ := db.DropTombstone(s.ID); ok {
		t.Error("drop with export jobs left: got true, want false")
	}
	jobs, err := db.DeletedSubscriptionExports(s.ID, 10)
	if err != nil || len(jobs) != 1 || jobs[0].ID != active.ID {
		t.Fatalf("got jobs %v, %v; want the active job", jobs, err)
	}
	if n, err := db.DeleteExports([]uuid.UUID{active.ID}); err != nil || n != 1 {
		t.Fatalf("DeleteExports: got %d, %v", n, err)
	}
	if list, _ := db.ActiveExports(); len(list) != 0 {
		t.Errorf("got %d active jobs, want 0", len(list))
	}
	if ok, err := db.DropTombstone(s.ID); err != nil || !ok {
		t.Errorf("drop: got %v, %v; want true", ok, err)
	}
	if stones, _ := db.Tombstones(); len(stones) != 0 {
		t.Errorf("got tombstones %v, want none", stones)
	}
	if ok, err := db.DropTombstone(s.ID); err != nil || !ok {
		t.Errorf("drop again: got %v, %v; want true", ok, err)
	}
}

func testPurgeExpiredEvents(t *testing.T, open Opener) {
	db, clk := openExports(t, open)
	cust := uuid.New()
	a, b := upkeepSub(t, db, cust, "a"), upkeepSub(t, db, cust, "b")
	old := addEach(t, db, 5, a, b)
	attemptsOf(t, db, old[:4], store.Failed, 301, store.ReasonRedirect)
	if sum, err := db.Summary(cust, a.ID); err != nil || sum.FailedBy[store.ReasonRedirect] != 2 {
		t.Fatalf("failures by reason before the purge: got %v, %v; want 2 redirects", sum.FailedBy, err)
	}
	clk.Add(8 * 24 * time.Hour)
	fresh := addEach(t, db, 2, a)
	cutoff := clk.Now().Add(-7 * 24 * time.Hour)

	total := 0
	for {
		n, err := db.PurgeExpiredEvents(cutoff, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n > 3 {
			t.Fatalf("got a batch of %d, want at most 3", n)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 10 {
		t.Fatalf("got %d purged, want 10", total)
	}
	evs, n, _ := db.Events(cust, a.ID, store.EventQuery{Limit: 10})
	if n != 2 || len(evs) != 2 || evs[0].ID != fresh[0].ID {
		t.Errorf("got %d events left, want the 2 fresh ones", n)
	}
	summaryIs(t, db, a, 0, 2, 0, 0)
	summaryIs(t, db, b, 0, 0, 0, 0)
	if sum, err := db.Summary(cust, a.ID); err != nil || slices.ContainsFunc(sum.FailedBy[:], func(n uint64) bool { return n != 0 }) {
		t.Errorf("failures by reason after the purge: got %v, %v; want none", sum.FailedBy, err)
	}
	if due, _ := db.DueSubscriptions(); len(due) != 1 {
		t.Errorf("got due %v, want only a", due)
	}
	// The cutoff is exclusive: events created at it stay.
	if n, err := db.PurgeExpiredEvents(clk.Now(), 10); err != nil || n != 0 {
		t.Errorf("at the fresh events' creation time: got %d, %v; want 0", n, err)
	}
}

func testDeletedSubscriptionPurge(t *testing.T, open Opener) {
	db, _ := openExports(t, open)
	cust := uuid.New()
	s, keep := upkeepSub(t, db, cust, "gone"), upkeepSub(t, db, cust, "keep")
	added := addEach(t, db, 6, s, keep)
	var mine []store.Added
	for _, a := range added {
		if a.SubscriptionID == s.ID {
			mine = append(mine, a)
		}
	}
	attemptsOf(t, db, mine[:3], store.Failed, 301, store.ReasonRedirect)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0)
	if err != nil {
		t.Fatal(err)
	}
	completeJob(t, db, job)
	if err := db.DeleteSubscription(cust, s.ID); err != nil {
		t.Fatal(err)
	}
	// Late writes for the deleted subscription change nothing.
	if got, _ := db.AddEvents([]store.NewEvent{{Type: "entityCreated"}}, []store.Delivery{{SubscriptionID: s.ID, Event: 0}}); len(got) != 0 {
		t.Errorf("got %d added to a deleted subscription, want 0", len(got))
	}
	attemptsOf(t, db, mine[4:5], store.Delivered, 200, store.ReasonNone)

	if tombs, _ := db.Tombstones(); len(tombs) != 1 || tombs[0] != s.ID {
		t.Fatalf("got tombstones %v, want [%s]", tombs, s.ID)
	}
	if events, n, err := db.PurgeDeleted(keep.ID, 4); err != nil || events != 0 || n != 0 {
		t.Errorf("purging a subscription that exists: got %d, %d, %v; want nothing", events, n, err)
	}
	purged := 0
	for {
		events, n, err := db.PurgeDeleted(s.ID, 4)
		if err != nil {
			t.Fatal(err)
		}
		if events > n || n > 4 {
			t.Fatalf("got %d events in a batch of %d keys (limit 4)", events, n)
		}
		purged += events
		if n == 0 {
			break
		}
	}
	if purged != len(mine) {
		t.Errorf("events purged: got %d, want %d (index entries do not count)", purged, len(mine))
	}
	// The export job still exists: the tombstone stays.
	if ok, err := db.DropTombstone(s.ID); ok || err != nil {
		t.Fatalf("with an export job left: got %v %v, want false nil", ok, err)
	}
	jobs, err := db.DeletedSubscriptionExports(s.ID, 10)
	if err != nil || len(jobs) != 1 || jobs[0].ID != job.ID {
		t.Fatalf("got jobs %v %v, want [%s]", jobs, err, job.ID)
	}
	if _, err := db.DeleteExports([]uuid.UUID{job.ID}); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.DropTombstone(s.ID); !ok || err != nil {
		t.Fatalf("got %v %v, want true nil", ok, err)
	}
	if tombs, _ := db.Tombstones(); len(tombs) != 0 {
		t.Errorf("got tombstones %v, want none", tombs)
	}
	if _, n, _ := db.Events(cust, keep.ID, store.EventQuery{Limit: 1}); n != 6 {
		t.Errorf("got %d events of the other subscription, want 6", n)
	}
	if _, err := db.SubscriptionByID(s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SubscriptionByID of a deleted one: got %v, want ErrNotFound", err)
	}
	if got, err := db.SubscriptionByID(keep.ID); err != nil || got.Title != "keep" {
		t.Errorf("SubscriptionByID: got %+v %v, want keep", got, err)
	}
}

// testPurgeLeavesOthersAlone: purging a deleted subscription and the
// expired events keeps the other subscriptions' counters, jobs and
// timeline, and a deleted subscription's events wait for PurgeDeleted.
func testPurgeLeavesOthersAlone(t *testing.T, open Opener) {
	db, clk := openExports(t, open)
	cust := uuid.New()
	gone, keep := upkeepSub(t, db, cust, "gone"), upkeepSub(t, db, cust, "keep")
	added := addEach(t, db, 3, gone, keep)
	var keepAdded []store.Added
	for _, a := range added {
		if a.SubscriptionID == keep.ID {
			keepAdded = append(keepAdded, a)
		}
	}
	attemptsOf(t, db, added, store.Failed, 500, store.ReasonStatus5xx)
	job, err := db.CreateExport(cust, keep.ID, "", store.ScopeSubscription, 0)
	if err != nil {
		t.Fatal(err)
	}
	completeJob(t, db, job)
	if err := db.DeleteSubscription(cust, gone.ID); err != nil {
		t.Fatal(err)
	}
	// Expired events of a deleted subscription are PurgeDeleted's.
	clk.Add(time.Hour)
	if n, err := db.PurgeExpiredEvents(clk.Now(), 2); err != nil || n != 2 {
		t.Fatalf("PurgeExpiredEvents: got %d, %v; want a batch of 2", n, err)
	}
	if n, err := db.PurgeExpiredEvents(clk.Now(), 100); err != nil || n != 1 {
		t.Fatalf("PurgeExpiredEvents: got %d, %v; want the last of keep's events", n, err)
	}
	for {
		_, n, err := db.PurgeDeleted(gone.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	summaryIs(t, db, keep, 0, 0, 0, 0)
	if j, err := db.Export(cust, keep.ID, job.ID); err != nil || j.State != store.ExportCompleted {
		t.Errorf("keep's job: got %+v, %v", j, err)
	}
	hours, err := db.Timeline(cust, keep.ID, clk.Now().Add(-2*time.Hour), clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	var failed uint64
	for _, h := range hours {
		failed += h.Failed
	}
	if failed != uint64(len(keepAdded)) {
		t.Errorf("keep's timeline: got %d failures, want %d", failed, len(keepAdded))
	}
}

// testUpkeepZeroLimit: a batch of no records removes and returns nothing;
// a scan with a negative limit reads the whole range.
func testUpkeepZeroLimit(t *testing.T, open Opener) {
	db, clk := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	ids := addFailed(t, db, s, 3)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []uuid.UUID
	_, done, err := db.ScanExport(job, 0, time.Time{}, -1, func(e *store.ExportEvent) error {
		got = append(got, e.ID)
		return nil
	})
	if err != nil || !done || !slices.Equal(got, ids) {
		t.Errorf("scan with a negative limit: got %v, done %v, %v; want every event", got, done, err)
	}
	if _, err := db.CancelExport(s.CustomerID, s.ID, job.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSubscription(s.CustomerID, s.ID); err != nil {
		t.Fatal(err)
	}
	clk.Add(24 * time.Hour)
	later := clk.Now()
	for _, limit := range []int{0, -1} {
		if n, err := db.PurgeExpiredEvents(later, limit); err != nil || n != 0 {
			t.Errorf("PurgeExpiredEvents(%d): got %d, %v", limit, n, err)
		}
		if events, keys, err := db.PurgeDeleted(s.ID, limit); err != nil || events != 0 || keys != 0 {
			t.Errorf("PurgeDeleted(%d): got %d, %d, %v", limit, events, keys, err)
		}
		if jobs, err := db.DeletedSubscriptionExports(s.ID, limit); err != nil || len(jobs) != 0 {
			t.Errorf("DeletedSubscriptionExports(%d): got %d jobs, %v", limit, len(jobs), err)
		}
		if jobs, err := db.ExpiredExports(later, limit); err != nil || len(jobs) != 0 {
			t.Errorf("ExpiredExports(%d): got %d jobs, %v", limit, len(jobs), err)
		}
		for name, purge := range map[string]func(time.Time, int) (int, error){
			"PurgeIntakeIDs": db.PurgeIntakeIDs, "PurgeIdempotencyKeys": db.PurgeIdempotencyKeys, "PurgeTimeline": db.PurgeTimeline,
		} {
			if n, err := purge(later, limit); err != nil || n != 0 {
				t.Errorf("%s(%d): got %d, %v", name, limit, n, err)
			}
		}
	}
	// Nothing went: the deleted subscription's events and job are all there.
	events, _, err := db.PurgeDeleted(s.ID, 100)
	if err != nil || events != 3 {
		t.Errorf("PurgeDeleted: got %d events, %v; want 3", events, err)
	}
	if jobs, err := db.DeletedSubscriptionExports(s.ID, 100); err != nil || len(jobs) != 1 {
		t.Errorf("DeletedSubscriptionExports: got %d jobs, %v; want 1", len(jobs), err)
	}
}
