package bolt

import (
	"errors"
	"fmt"
	"hookd/store"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// testClock is a settable clock for the store.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openClockDB opens a store in a temporary directory with a settable clock
// and checks its consistency at the end of the test.
func openClockDB(t *testing.T) (*DB, *testClock) {
	t.Helper()
	clk := &testClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	db, err := Open(t.TempDir(), Options{NoSync: true, Now: clk.now})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		db.Close()
	})
	return db, clk
}

// disabledSub creates a disabled subscription of customer, so that every
// event recorded for it fails at once.
func disabledSub(t *testing.T, db *DB, customer uuid.UUID) store.Subscription {
	t.Helper()
	s := newTestSub(customer, "sub "+uuid.NewString()[:8], db.Now())
	s.Enabled = false
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

// addFailures records n events for the disabled subscription s and returns
// their ids in order.
func addFailures(t *testing.T, db *DB, s store.Subscription, n int) []uuid.UUID {
	t.Helper()
	events := make([]store.NewEvent, n)
	deliveries := make([]store.Delivery, n)
	for i := range events {
		events[i] = store.NewEvent{Type: "entityCreated", Txn: uuid.NewString(), Toe: 1700000000 + int64(i),
			Payload: fmt.Appendf(nil, `{"sub":"s%d"}`, i)}
		deliveries[i] = store.Delivery{SubscriptionID: s.ID, Event: i}
	}
	added, err := db.AddEvents(events, deliveries)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uuid.UUID, len(added))
	for i, a := range added {
		if a.State != store.Failure {
			t.Fatalf("event %d: got state %s, want failure", i, a.State)
		}
		ids[i] = a.ID
	}
	return ids
}

// scanAll reads job's whole range in chunks of chunk failure sequences and
// returns the ids of the events it found.
func scanAll(t *testing.T, db *DB, job store.ExportJob, since time.Time, chunk int) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	var after uint64
	for i := 0; ; i++ {
		next, done, err := db.ScanExport(job, after, since, chunk, func(e *store.ExportEvent) error {
			ids = append(ids, e.ID)
			return nil
		})
		if err != nil {
			t.Fatalf("ScanExport: %v", err)
		}
		if done {
			return ids
		}
		if next <= after || i > 1e6 {
			t.Fatalf("ScanExport made no progress after %d", after)
		}
		after = next
	}
}

// exportNow runs job id to completion as the exporter would and returns
// the event ids of its file.
func exportNow(t *testing.T, db *DB, job store.ExportJob) []uuid.UUID {
	t.Helper()
	job, err := db.BeginExportWrite(job.ID, "key/"+job.ID.String())
	if err != nil {
		t.Fatalf("BeginExportWrite: %v", err)
	}
	ids := scanAll(t, db, job, time.Time{}, 1000)
	done, err := db.CompleteExport(job.ID, store.ExportResult{Key: job.Key, Size: 1, ETag: `"x"`, EventCount: int64(len(ids))})
	if err != nil {
		t.Fatalf("CompleteExport: %v", err)
	}
	if done.State != store.ExportCompleted || done.EventCount != int64(len(ids)) {
		t.Fatalf("got job %+v, want completed with %d events", done, len(ids))
	}
	return ids
}

func exportable(t *testing.T, db *DB, s store.Subscription) uint64 {
	t.Helper()
	sum, err := db.Summary(s.CustomerID, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	return sum.Exportable
}

func TestExportRangeAndWatermark(t *testing.T) {
	db, clk := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	first := addFailures(t, db, s, 5)

	job, err := db.CreateExport(s.CustomerID, s.ID, "gzip", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != store.ExportProcessing || job.FromSeq != 0 || job.ToSeq != 5 || job.Encoding != "gzip" {
		t.Fatalf("got job %+v, want processing over (0, 5] with gzip", job)
	}
	// Failures after the job started are not in it.
	second := addFailures(t, db, s, 3)
	clk.add(time.Minute)
	got := exportNow(t, db, job)
	if !slices.Equal(got, first) {
		t.Fatalf("got events %v, want %v", got, first)
	}
	if n := exportable(t, db, s); n != 3 {
		t.Errorf("got %d exportable, want 3", n)
	}
	e, err := db.Event(s.CustomerID, s.ID, first[2])
	if err != nil || !e.ExportedAt.Equal(clk.now()) {
		t.Errorf("exported event: got exportedAt %v (%v), want %v", e.ExportedAt, err, clk.now())
	}
	e, err = db.Event(s.CustomerID, s.ID, second[0])
	if err != nil || !e.ExportedAt.IsZero() {
		t.Errorf("later event: got exportedAt %v (%v), want none", e.ExportedAt, err)
	}

	job2, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if job2.FromSeq != 5 || job2.ToSeq != 8 {
		t.Fatalf("got range (%d, %d], want (5, 8]", job2.FromSeq, job2.ToSeq)
	}
	if got := exportNow(t, db, job2); !slices.Equal(got, second) {
		t.Fatalf("second export: got %v, want %v", got, second)
	}
	// With nothing left to export no job is created.
	_, err = db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Reason != store.NothingToExport {
		t.Fatalf("third export: got %v, want %q", err, store.NothingToExport)
	}
	if list, _ := db.Exports(s.CustomerID, s.ID, time.Time{}); len(list) != 2 {
		t.Errorf("got %d jobs, want the 2 that exported events", len(list))
	}
}

// TestNothingToExport: a subscription without failed events that await an
// export gets no job and no cooldown; redelivered failures do not count;
// an export that wrote no event (its events left the retention window)
// starts no cooldown.
func TestNothingToExport(t *testing.T) {
	db, clk := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	nothing := func(what string) {
		t.Helper()
		_, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 24*time.Hour)
		var ce *store.ConflictError
		if !errors.As(err, &ce) || ce.Reason != store.NothingToExport {
			t.Fatalf("%s: got %v, want %q", what, err, store.NothingToExport)
		}
		if active, _ := db.ActiveExports(); len(active) != 0 {
			t.Fatalf("%s: got %d active jobs, want none", what, len(active))
		}
	}
	nothing("no events")
	ids := addFailures(t, db, s, 2)
	if _, _, err := db.UpdateSubscription(s.CustomerID, s.ID, func(s *store.Subscription) error { s.Enabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if n, err := db.RedeliverAll(s.CustomerID, s.ID, 10); err != nil || n != 2 {
		t.Fatalf("RedeliverAll: got %d, %v", n, err)
	}
	nothing("every failure redelivered")
	if list, _ := db.Exports(s.CustomerID, s.ID, time.Time{}); len(list) != 0 {
		t.Errorf("got %d jobs, want none", len(list))
	}
	// A failure makes the export possible; a job that completes with no
	// event (as when its events left the retention window) starts no
	// cooldown.
	var results []store.AttemptResult
	for _, id := range ids {
		results = append(results, store.AttemptResult{SubscriptionID: s.ID, Seq: store.EventSeq(id), StartedAt: db.Now(), Outcome: store.Failed, StatusCode: 500})
	}
	if err := db.RecordAttempts(results); err != nil {
		t.Fatal(err)
	}
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginExportWrite(job.ID, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CompleteExport(job.ID, store.ExportResult{Key: "k", EventCount: 0}); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	addFailuresEnabled(t, db, s)
	if _, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 24*time.Hour); err != nil {
		t.Errorf("after an export of no event: got %v, want a job (no cooldown)", err)
	}
}

func TestExportNeverTwice(t *testing.T) {
	db, _ := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	ids := addFailures(t, db, s, 4)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	exportNow(t, db, job)

	// Redeliver the exported events and fail them again: they are not
	// exportable a second time.
	if _, _, err := db.UpdateSubscription(s.CustomerID, s.ID, func(s *store.Subscription) error { s.Enabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	n, err := db.RedeliverAll(s.CustomerID, s.ID, 100)
	if err != nil || n != 4 {
		t.Fatalf("RedeliverAll: got %d, %v; want 4", n, err)
	}
	var results []store.AttemptResult
	for _, id := range ids {
		results = append(results, store.AttemptResult{SubscriptionID: s.ID, Seq: store.EventSeq(id), StartedAt: db.Now(), Outcome: store.Failed, StatusCode: 500})
	}
	if err := db.RecordAttempts(results); err != nil {
		t.Fatal(err)
	}
	fresh := addFailuresEnabled(t, db, s)
	job2, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := exportNow(t, db, job2); !slices.Equal(got, []uuid.UUID{fresh}) {
		t.Fatalf("second export: got %v, want only the new failure %s", got, fresh)
	}
	for _, id := range ids {
		e, err := db.Event(s.CustomerID, s.ID, id)
		if err != nil || e.State != store.Failure || e.ExportedAt.IsZero() {
			t.Errorf("event %s: got state %s exportedAt %v (%v), want failure and exported", id, e.State, e.ExportedAt, err)
		}
	}
}

// addFailuresEnabled records one event for the enabled subscription s and
// fails it through an attempt.
func addFailuresEnabled(t *testing.T, db *DB, s store.Subscription) uuid.UUID {
	t.Helper()
	added, err := db.AddEvents([]store.NewEvent{{Type: "entityCreated", Payload: []byte(`{}`)}}, []store.Delivery{{SubscriptionID: s.ID}})
	if err != nil || len(added) != 1 {
		t.Fatalf("AddEvents: %v", err)
	}
	err = db.RecordAttempts([]store.AttemptResult{{SubscriptionID: s.ID, Seq: store.EventSeq(added[0].ID), StartedAt: db.Now(), Outcome: store.Failed}})
	if err != nil {
		t.Fatal(err)
	}
	return added[0].ID
}

func TestCancelExportChangesNothing(t *testing.T) {
	db, _ := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	ids := addFailures(t, db, s, 3)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CancelExport(uuid.New(), s.ID, job.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancel by another customer: got %v, want ErrNotFound", err)
	}
	got, err := db.CancelExport(s.CustomerID, s.ID, job.ID)
	if err != nil || got.State != store.ExportCanceled {
		t.Fatalf("cancel: got %+v, %v; want canceled", got, err)
	}
	if _, err := db.CancelExport(s.CustomerID, s.ID, job.ID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second cancel: got %v, want ErrConflict", err)
	}
	if _, err := db.BeginExportWrite(job.ID, "k"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("writing a canceled job: got %v, want ErrConflict", err)
	}
	if n := exportable(t, db, s); n != 3 {
		t.Errorf("got %d exportable, want 3", n)
	}
	active, err := db.ActiveExports()
	if err != nil || len(active) != 0 {
		t.Errorf("got active jobs %v, %v; want none", active, err)
	}
	// Neither a cooldown nor the scope holds back the next job.
	job2, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, time.Hour)
	if err != nil {
		t.Fatalf("export after cancel: %v", err)
	}
	if _, err := db.BeginExportWrite(job2.ID, "k"); err != nil {
		t.Fatal(err)
	}
	_, err = db.CancelExport(s.CustomerID, s.ID, job2.ID)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Reason == "" {
		t.Errorf("cancel while writing: got %v, want a ConflictError with a reason", err)
	}
	if got := exportNow2(t, db, job2); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}
}

// exportNow2 finishes a job that is already writing.
func exportNow2(t *testing.T, db *DB, job store.ExportJob) []uuid.UUID {
	t.Helper()
	ids := scanAll(t, db, job, time.Time{}, 2)
	if _, err := db.CompleteExport(job.ID, store.ExportResult{Key: "k", EventCount: int64(len(ids))}); err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestCompleteAfterDeleteRefused(t *testing.T) {
	db, _ := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	addFailures(t, db, s, 2)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginExportWrite(job.ID, "k"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSubscription(s.CustomerID, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CompleteExport(job.ID, store.ExportResult{Key: "k"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("complete after delete: got %v, want ErrConflict", err)
	}
	got, err := db.FailExport(job.ID, store.FailureSubscriptionDeleted, "subscription deleted")
	if err != nil || got.State != store.ExportFailed || got.Error != "subscription deleted" || got.FailureReason != store.FailureSubscriptionDeleted {
		t.Fatalf("fail: got %+v, %v", got, err)
	}
	if _, err := db.FailExport(job.ID, store.FailureInternal, "again"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("failing an ended job: got %v, want ErrConflict", err)
	}
	// A processing job of a deleted subscription cannot begin writing.
	s2 := disabledSub(t, db, uuid.New())
	addFailures(t, db, s2, 1)
	job2, err := db.CreateExport(s2.CustomerID, s2.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSubscription(s2.CustomerID, s2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginExportWrite(job2.ID, "k"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("begin after delete: got %v, want ErrConflict", err)
	}
}

func TestExportCooldown(t *testing.T) {
	db, clk := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	other := disabledSub(t, db, s.CustomerID)
	addFailures(t, db, s, 1)
	addFailures(t, db, other, 1)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	exportNow(t, db, job)
	addFailures(t, db, s, 1)
	clk.add(23 * time.Hour)
	_, err = db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 24*time.Hour)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Reason == store.TooManyActiveExports {
		t.Fatalf("within the cooldown: got %v, want a cooldown conflict", err)
	}
	if _, err := db.CreateExport(other.CustomerID, other.ID, "", store.ScopeSubscription, 24*time.Hour); err != nil {
		t.Errorf("another subscription within the cooldown: got %v, want nil", err)
	}
	if j, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0); err != nil {
		t.Errorf("cooldown 0: got %v, want nil", err)
	} else if _, err := db.CancelExport(s.CustomerID, s.ID, j.ID); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)
	if _, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 24*time.Hour); err != nil {
		t.Errorf("after the cooldown: got %v, want nil", err)
	}
}

func TestExportScopes(t *testing.T) {
	for _, tc := range []struct {
		scope                            store.ExportScope
		sameSub, otherSub, otherCustomer bool // whether a second job may start
	}{
		{"", false, false, true}, // the default: per customer
		{store.ScopeCustomer, false, false, true},
		{store.ScopeSubscription, false, true, true},
	} {
		t.Run(string(tc.scope), func(t *testing.T) {
			db, _ := openClockDB(t)
			cust := uuid.New()
			a, b := disabledSub(t, db, cust), disabledSub(t, db, cust)
			c := disabledSub(t, db, uuid.New())
			for _, s := range []store.Subscription{a, b, c} {
				addFailures(t, db, s, 1)
			}
			first, err := db.CreateExport(cust, a.ID, "", tc.scope, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.BeginExportWrite(first.ID, "k"); err != nil {
				t.Fatal(err)
			}
			for _, try := range []struct {
				name string
				sub  store.Subscription
				ok   bool
			}{{"same subscription", a, tc.sameSub}, {"other subscription", b, tc.otherSub}, {"other customer", c, tc.otherCustomer}} {
				j, err := db.CreateExport(try.sub.CustomerID, try.sub.ID, "", tc.scope, 0)
				var ce *store.ConflictError
				switch {
				case try.ok && err != nil:
					t.Errorf("%s: got %v, want a job", try.name, err)
				case !try.ok && (!errors.As(err, &ce) || ce.Reason != store.TooManyActiveExports):
					t.Errorf("%s: got %v, want %q", try.name, err, store.TooManyActiveExports)
				case err == nil:
					if _, err := db.CancelExport(try.sub.CustomerID, try.sub.ID, j.ID); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := db.FailExport(first.ID, store.FailureInternal, "test"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.CreateExport(cust, b.ID, "", tc.scope, 0); err != nil {
				t.Errorf("after the active job ended: got %v, want a job", err)
			}
		})
	}
}

func TestScanExportFilters(t *testing.T) {
	db, clk := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	old := addFailures(t, db, s, 2)
	clk.add(time.Hour)
	recent := addFailures(t, db, s, 5)
	// Two recent events leave failure before the export starts.
	if _, _, err := db.UpdateSubscription(s.CustomerID, s.ID, func(s *store.Subscription) error { s.Enabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, id := range recent[1:3] {
		if _, err := db.Redeliver(s.CustomerID, s.ID, id); err != nil {
			t.Fatal(err)
		}
	}
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	// While the job is active its events cannot be redelivered.
	if _, err := db.Redeliver(s.CustomerID, s.ID, recent[0]); !errors.Is(err, store.ErrConflict) {
		t.Errorf("redeliver during an export: got %v, want ErrConflict", err)
	}
	if _, err := db.RedeliverAll(s.CustomerID, s.ID, 10); !errors.Is(err, store.ErrConflict) {
		t.Errorf("redeliver all during an export: got %v, want ErrConflict", err)
	}
	want := []uuid.UUID{recent[0], recent[3], recent[4]}
	for _, chunk := range []int{1, 2, 3, 1000} {
		if got := scanAll(t, db, job, clk.now().Add(-30*time.Minute), chunk); !slices.Equal(got, want) {
			t.Errorf("chunk %d: got %v, want %v", chunk, got, want)
		}
	}
	if got := scanAll(t, db, job, time.Time{}, 3); !slices.Equal(got, append(slices.Clone(old), want...)) {
		t.Errorf("without a window: got %v, want the old events too", got)
	}
	// The fields of a line.
	var seen []store.ExportEvent
	_, _, err = db.ScanExport(job, 0, time.Time{}, 1, func(e *store.ExportEvent) error {
		c := *e
		c.Type, c.Payload, c.Endpoint = slices.Clone(e.Type), slices.Clone(e.Payload), slices.Clone(e.Endpoint)
		seen = append(seen, c)
		return nil
	})
	if err != nil || len(seen) != 1 {
		t.Fatalf("got %d events, %v; want 1", len(seen), err)
	}
	full, err := db.Event(s.CustomerID, s.ID, old[0])
	if err != nil {
		t.Fatal(err)
	}
	x := seen[0]
	if x.ID != full.ID || !x.CreatedAt.Equal(full.CreatedAt) || x.Toe != full.Toe || string(x.Type) != full.Type ||
		string(x.Payload) != string(full.Payload) || string(x.Endpoint) != full.Endpoint || len(x.JWS) != 0 {
		t.Errorf("got %+v, want the fields of %+v", x, full)
	}
	stop := errors.New("stop")
	if _, _, err := db.ScanExport(job, 0, time.Time{}, 10, func(*store.ExportEvent) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("callback error: got %v, want it returned", err)
	}
}

func TestExportsListAndLookup(t *testing.T) {
	db, clk := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	addFailures(t, db, s, 1)
	var ids []uuid.UUID
	for range 3 {
		j, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CancelExport(s.CustomerID, s.ID, j.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
		clk.add(time.Hour)
	}
	list, err := db.Exports(s.CustomerID, s.ID, clk.now().Add(-150*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != ids[1] || list[1].ID != ids[2] {
		t.Errorf("got %d jobs, want the last two, oldest first", len(list))
	}
	if _, err := db.Exports(uuid.New(), s.ID, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another customer's list: got %v, want ErrNotFound", err)
	}
	other := disabledSub(t, db, s.CustomerID)
	if _, err := db.Export(s.CustomerID, other.ID, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a job through another subscription: got %v, want ErrNotFound", err)
	}
	if j, err := db.Export(s.CustomerID, s.ID, ids[0]); err != nil || j.State != store.ExportCanceled {
		t.Errorf("Export: got %+v, %v", j, err)
	}
}

func TestResumeExport(t *testing.T) {
	db, _ := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	addFailures(t, db, s, 2)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResumeExport(job.ID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("resume while processing: got %v, want ErrConflict", err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		j, err := db.BeginExportWrite(job.ID, "k")
		if err != nil || j.Attempts != attempt || j.State != store.ExportWriting {
			t.Fatalf("begin %d: got %+v, %v", attempt, j, err)
		}
		if j, err = db.ResumeExport(job.ID); err != nil || j.State != store.ExportProcessing {
			t.Fatalf("resume %d: got %+v, %v", attempt, j, err)
		}
	}
	if n := exportable(t, db, s); n != 2 {
		t.Errorf("got %d exportable, want 2", n)
	}
}

// TestRetryExport: a write that failed on the blob store puts the job back
// in processing with its retry state; the job stays active (its events
// reserved), its blob errors do not count as interruptions, and failing it
// keeps the reason for the customer and the detail for the operator.
func TestRetryExport(t *testing.T) {
	db, clk := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	ids := addFailures(t, db, s, 2)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.RetryExport(job.ID, clk.now(), "x"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("retry while processing: got %v, want ErrConflict", err)
	}
	first := clk.now()
	for n := 1; n <= 2; n++ {
		if _, err := db.BeginExportWrite(job.ID, "k"); err != nil {
			t.Fatal(err)
		}
		at := clk.now().Add(time.Duration(n) * time.Second)
		j, err := db.RetryExport(job.ID, at, "connection refused")
		if err != nil {
			t.Fatal(err)
		}
		if j.State != store.ExportProcessing || j.BlobErrors != n || !j.RetryAt.Equal(at) || !j.RetryingSince.Equal(first) ||
			j.Error != "connection refused" || j.Interruptions() != 0 || j.FailureReason != "" {
			t.Fatalf("retry %d: got %+v", n, j)
		}
		clk.add(time.Minute)
	}
	if active, _ := db.ActiveExports(); len(active) != 1 || !active[0].RetryAt.After(first) {
		t.Errorf("got active jobs %+v, want the retrying job with its RetryAt", active)
	}
	if _, _, err := db.UpdateSubscription(s.CustomerID, s.ID, func(s *store.Subscription) error { s.Enabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Redeliver(s.CustomerID, s.ID, ids[0]); !errors.Is(err, store.ErrConflict) {
		t.Errorf("redeliver an event of the retrying job: got %v, want ErrConflict", err)
	}
	j, err := db.FailExport(job.ID, store.FailureStorageUnavailable, "down for 30m")
	if err != nil || j.State != store.ExportFailed || j.FailureReason != store.FailureStorageUnavailable || j.Error != "down for 30m" || !j.RetryAt.IsZero() {
		t.Fatalf("fail: got %+v, %v", j, err)
	}
	if n := exportable(t, db, s); n != 2 {
		t.Errorf("got %d exportable after the failure, want 2", n)
	}
}
