package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// The export jobs: their ranges of failure sequences, the scope and
// cooldown rules, the state machine and the scan of a job's events.
func init() {
	register(map[string]func(t *testing.T, open Opener){
		"ExportRangeAndWatermark":    testExportRangeAndWatermark,
		"NothingToExport":            testNothingToExport,
		"ExportNeverTwice":           testExportNeverTwice,
		"CancelExportChangesNothing": testCancelExportChangesNothing,
		"CompleteAfterDeleteRefused": testCompleteAfterDeleteRefused,
		"ExportCooldown":             testExportCooldown,
		"ExportScopes":               testExportScopes,
		"ExportScopeConcurrent":      testExportScopeConcurrent,
		"ScanExportFilters":          testScanExportFilters,
		"ExportsListAndLookup":       testExportsListAndLookup,
		"ResumeExport":               testResumeExport,
		"RetryExport":                testRetryExport,
		"ExportStates":               testExportStates,
		"CompleteExportChecksState":  testCompleteExportChecksState,
	})
}

// openExports opens a fresh store on a settable clock.
func openExports(t *testing.T, open Opener) (store.Store, *Clock) {
	t.Helper()
	clk := NewClock()
	return open(t, clk.Now), clk
}

// failingSub creates a disabled subscription of customer, so that every
// event recorded for it fails at once.
func failingSub(t *testing.T, db store.Store, customer uuid.UUID) store.Subscription {
	t.Helper()
	now := db.Now()
	s := store.Subscription{
		ID: uuid.New(), CustomerID: customer, Title: "sub " + uuid.NewString()[:8], Endpoint: "https://example.com/hook",
		Events: []string{"entityCreated"}, Enabled: false, CreatedAt: now, UpdatedAt: now,
	}
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

// addFailed records n events for the disabled subscription s and returns
// their ids in order.
func addFailed(t *testing.T, db store.Store, s store.Subscription, n int) []uuid.UUID {
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

// failOneMore records one event for the enabled subscription s and fails
// it through an attempt.
func failOneMore(t *testing.T, db store.Store, s store.Subscription) uuid.UUID {
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

// failAgain fails the redelivered events ids of s through an attempt.
func failAgain(t *testing.T, db store.Store, s store.Subscription, ids []uuid.UUID) {
	t.Helper()
	var results []store.AttemptResult
	for _, id := range ids {
		results = append(results, store.AttemptResult{SubscriptionID: s.ID, Seq: store.EventSeq(id), StartedAt: db.Now(), Outcome: store.Failed, StatusCode: 500})
	}
	if err := db.RecordAttempts(results); err != nil {
		t.Fatal(err)
	}
}

// enable enables subscription s.
func enable(t *testing.T, db store.Store, s store.Subscription) {
	t.Helper()
	if _, _, err := db.UpdateSubscription(s.CustomerID, s.ID, func(s *store.Subscription) error { s.Enabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
}

// scanJob reads job's whole range in chunks of chunk failure sequences and
// returns the ids of the events it found.
func scanJob(t *testing.T, db store.Store, job store.ExportJob, since time.Time, chunk int) []uuid.UUID {
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

// completeJob runs job to completion as the exporter would and returns the
// event ids of its file.
func completeJob(t *testing.T, db store.Store, job store.ExportJob) []uuid.UUID {
	t.Helper()
	job, err := db.BeginExportWrite(job.ID, "key/"+job.ID.String())
	if err != nil {
		t.Fatalf("BeginExportWrite: %v", err)
	}
	ids := scanJob(t, db, job, time.Time{}, 1000)
	done, err := db.CompleteExport(job.ID, store.ExportResult{Key: job.Key, Size: 1, ETag: `"x"`, EventCount: int64(len(ids))})
	if err != nil {
		t.Fatalf("CompleteExport: %v", err)
	}
	if done.State != store.ExportCompleted || done.EventCount != int64(len(ids)) {
		t.Fatalf("got job %+v, want completed with %d events", done, len(ids))
	}
	return ids
}

// finishWrite completes a job that is already writing, scanning in small
// chunks, and returns the event ids of its file.
func finishWrite(t *testing.T, db store.Store, job store.ExportJob) []uuid.UUID {
	t.Helper()
	ids := scanJob(t, db, job, time.Time{}, 2)
	if _, err := db.CompleteExport(job.ID, store.ExportResult{Key: "k", EventCount: int64(len(ids))}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// exportableOf returns the number of s's failed events that await an export.
func exportableOf(t *testing.T, db store.Store, s store.Subscription) uint64 {
	t.Helper()
	sum, err := db.Summary(s.CustomerID, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	return sum.Exportable
}

// wantConflict fails the test unless err is a ConflictError with reason
// (any non-empty reason when reason is empty).
func wantConflict(t *testing.T, what string, err error, reason string) {
	t.Helper()
	var ce *store.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) || ce.Reason == "" || (reason != "" && ce.Reason != reason) {
		t.Errorf("%s: got %v, want a conflict %q", what, err, reason)
	}
}

func testExportRangeAndWatermark(t *testing.T, open Opener) {
	db, clk := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	first := addFailed(t, db, s, 5)

	job, err := db.CreateExport(s.CustomerID, s.ID, "gzip", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != store.ExportProcessing || job.FromSeq != 0 || job.ToSeq != 5 || job.Encoding != "gzip" ||
		job.CustomerID != s.CustomerID || job.SubscriptionID != s.ID || !job.CreatedAt.Equal(clk.Now()) {
		t.Fatalf("got job %+v, want processing over (0, 5] with gzip", job)
	}
	// Failures after the job started are not in it.
	second := addFailed(t, db, s, 3)
	clk.Add(time.Minute)
	got := completeJob(t, db, job)
	if !slices.Equal(got, first) {
		t.Fatalf("got events %v, want %v", got, first)
	}
	if n := exportableOf(t, db, s); n != 3 {
		t.Errorf("got %d exportable, want 3", n)
	}
	e, err := db.Event(s.CustomerID, s.ID, first[2])
	if err != nil || !e.ExportedAt.Equal(clk.Now()) {
		t.Errorf("exported event: got exportedAt %v (%v), want %v", e.ExportedAt, err, clk.Now())
	}
	e, err = db.Event(s.CustomerID, s.ID, second[0])
	if err != nil || !e.ExportedAt.IsZero() {
		t.Errorf("later event: got exportedAt %v (%v), want none", e.ExportedAt, err)
	}
	done, err := db.ExportByID(job.ID)
	if err != nil || done.State != store.ExportCompleted || !done.CompletedAt.Equal(clk.Now()) || !done.UpdatedAt.Equal(clk.Now()) ||
		done.Key != "key/"+job.ID.String() || done.Size != 1 || done.ETag != `"x"` || done.EventCount != 5 || done.Attempts != 1 {
		t.Errorf("completed job: got %+v, %v", done, err)
	}

	job2, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if job2.FromSeq != 5 || job2.ToSeq != 8 {
		t.Fatalf("got range (%d, %d], want (5, 8]", job2.FromSeq, job2.ToSeq)
	}
	if got := completeJob(t, db, job2); !slices.Equal(got, second) {
		t.Fatalf("second export: got %v, want %v", got, second)
	}
	// With nothing left to export no job is created.
	_, err = db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	wantConflict(t, "third export", err, store.NothingToExport)
	if list, _ := db.Exports(s.CustomerID, s.ID, time.Time{}); len(list) != 2 {
		t.Errorf("got %d jobs, want the 2 that exported events", len(list))
	}
}

// testNothingToExport: a subscription without failed events that await an
// export gets no job and no cooldown; redelivered failures do not count;
// an export that wrote no event (its events left the retention window)
// starts no cooldown.
func testNothingToExport(t *testing.T, open Opener) {
	db, clk := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	nothing := func(what string) {
		t.Helper()
		_, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 24*time.Hour)
		wantConflict(t, what, err, store.NothingToExport)
		if active, _ := db.ActiveExports(); len(active) != 0 {
			t.Fatalf("%s: got %d active jobs, want none", what, len(active))
		}
	}
	nothing("no events")
	ids := addFailed(t, db, s, 2)
	enable(t, db, s)
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
	failAgain(t, db, s, ids)
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
	clk.Add(time.Minute)
	failOneMore(t, db, s)
	if _, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 24*time.Hour); err != nil {
		t.Errorf("after an export of no event: got %v, want a job (no cooldown)", err)
	}
}

func testExportNeverTwice(t *testing.T, open Opener) {
	db, _ := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	ids := addFailed(t, db, s, 4)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	completeJob(t, db, job)

	// Redeliver the exported events and fail them again: they are not
	// exportable a second time.
	enable(t, db, s)
	n, err := db.RedeliverAll(s.CustomerID, s.ID, 100)
	if err != nil || n != 4 {
		t.Fatalf("RedeliverAll: got %d, %v; want 4", n, err)
	}
	failAgain(t, db, s, ids)
	fresh := failOneMore(t, db, s)
	job2, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := completeJob(t, db, job2); !slices.Equal(got, []uuid.UUID{fresh}) {
		t.Fatalf("second export: got %v, want only the new failure %s", got, fresh)
	}
	for _, id := range ids {
		e, err := db.Event(s.CustomerID, s.ID, id)
		if err != nil || e.State != store.Failure || e.ExportedAt.IsZero() {
			t.Errorf("event %s: got state %s exportedAt %v (%v), want failure and exported", id, e.State, e.ExportedAt, err)
		}
	}
}

func testCancelExportChangesNothing(t *testing.T, open Opener) {
	db, _ := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	ids := addFailed(t, db, s, 3)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CancelExport(uuid.New(), s.ID, job.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancel by another customer: got %v, want ErrNotFound", err)
	}
	if _, err := db.CancelExport(s.CustomerID, s.ID, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancel of an unknown job: got %v, want ErrNotFound", err)
	}
	got, err := db.CancelExport(s.CustomerID, s.ID, job.ID)
	if err != nil || got.State != store.ExportCanceled {
		t.Fatalf("cancel: got %+v, %v; want canceled", got, err)
	}
	_, err = db.CancelExport(s.CustomerID, s.ID, job.ID)
	wantConflict(t, "second cancel", err, "")
	_, err = db.BeginExportWrite(job.ID, "k")
	wantConflict(t, "writing a canceled job", err, "")
	if n := exportableOf(t, db, s); n != 3 {
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
	wantConflict(t, "cancel while writing", err, "")
	if got := finishWrite(t, db, job2); !slices.Equal(got, ids) {
		t.Errorf("got %v, want %v", got, ids)
	}
}

func testCompleteAfterDeleteRefused(t *testing.T, open Opener) {
	db, _ := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	addFailed(t, db, s, 2)
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
	_, err = db.CompleteExport(job.ID, store.ExportResult{Key: "k"})
	wantConflict(t, "complete after delete", err, "")
	if j, err := db.ExportByID(job.ID); err != nil || j.State != store.ExportWriting {
		t.Errorf("after the refused completion: got %+v, %v; want the job still writing", j, err)
	}
	got, err := db.FailExport(job.ID, store.FailureSubscriptionDeleted, "subscription deleted")
	if err != nil || got.State != store.ExportFailed || got.Error != "subscription deleted" || got.FailureReason != store.FailureSubscriptionDeleted {
		t.Fatalf("fail: got %+v, %v", got, err)
	}
	_, err = db.FailExport(job.ID, store.FailureInternal, "again")
	wantConflict(t, "failing an ended job", err, "")
	// A processing job of a deleted subscription cannot begin writing.
	s2 := failingSub(t, db, uuid.New())
	addFailed(t, db, s2, 1)
	job2, err := db.CreateExport(s2.CustomerID, s2.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSubscription(s2.CustomerID, s2.ID); err != nil {
		t.Fatal(err)
	}
	_, err = db.BeginExportWrite(job2.ID, "k")
	wantConflict(t, "begin after delete", err, "")
	if _, err := db.FailExport(uuid.New(), store.FailureInternal, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("failing an unknown job: got %v, want ErrNotFound", err)
	}
}

// testCompleteExportChecksState: only a writing job completes; a refused
// completion changes neither the job nor the watermark.
func testCompleteExportChecksState(t *testing.T, open Opener) {
	db, _ := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	addFailed(t, db, s, 2)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.CompleteExport(job.ID, store.ExportResult{Key: "k", EventCount: 2})
	wantConflict(t, "completing a processing job", err, "")
	if _, err := db.CompleteExport(uuid.New(), store.ExportResult{Key: "k"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("completing an unknown job: got %v, want ErrNotFound", err)
	}
	if j, err := db.ExportByID(job.ID); err != nil || j.State != store.ExportProcessing || j.Key != "" {
		t.Errorf("after the refused completion: got %+v, %v; want it unchanged", j, err)
	}
	if n := exportableOf(t, db, s); n != 2 {
		t.Errorf("got %d exportable, want 2", n)
	}
	if _, err := db.ExportByID(uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ExportByID of an unknown job: got %v, want ErrNotFound", err)
	}
}

func testExportCooldown(t *testing.T, open Opener) {
	db, clk := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	other := failingSub(t, db, s.CustomerID)
	addFailed(t, db, s, 1)
	addFailed(t, db, other, 1)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	completeJob(t, db, job)
	addFailed(t, db, s, 1)
	clk.Add(23 * time.Hour)
	_, err = db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 24*time.Hour)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Reason == store.TooManyActiveExports || ce.Reason == store.NothingToExport {
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
	clk.Add(time.Hour)
	if _, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 24*time.Hour); err != nil {
		t.Errorf("after the cooldown: got %v, want nil", err)
	}
}

func testExportScopes(t *testing.T, open Opener) {
	for _, tc := range []struct {
		scope                            store.ExportScope
		sameSub, otherSub, otherCustomer bool // whether a second job may start
	}{
		{"", false, false, true}, // the default: per customer
		{store.ScopeCustomer, false, false, true},
		{store.ScopeSubscription, false, true, true},
	} {
		t.Run(string(tc.scope), func(t *testing.T) {
			db, _ := openExports(t, open)
			cust := uuid.New()
			a, b := failingSub(t, db, cust), failingSub(t, db, cust)
			c := failingSub(t, db, uuid.New())
			for _, s := range []store.Subscription{a, b, c} {
				addFailed(t, db, s, 1)
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
				switch {
				case try.ok && err != nil:
					t.Errorf("%s: got %v, want a job", try.name, err)
				case !try.ok:
					wantConflict(t, try.name, err, store.TooManyActiveExports)
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

// testExportScopeConcurrent: jobs of one scope created at the same time
// still make at most one active job.
func testExportScopeConcurrent(t *testing.T, open Opener) {
	db, _ := openExports(t, open)
	cust := uuid.New()
	var subs []store.Subscription
	for range 4 {
		s := failingSub(t, db, cust)
		addFailed(t, db, s, 1)
		subs = append(subs, s)
	}
	const tries = 8
	var wg sync.WaitGroup
	errs := make([]error, tries)
	for i := range tries {
		wg.Go(func() {
			s := subs[i%len(subs)]
			_, errs[i] = db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
		})
	}
	wg.Wait()
	created := 0
	for i, err := range errs {
		if err == nil {
			created++
			continue
		}
		wantConflict(t, fmt.Sprintf("try %d", i), err, store.TooManyActiveExports)
	}
	active, err := db.ActiveExports()
	if err != nil || created != 1 || len(active) != 1 {
		t.Errorf("got %d jobs created and %d active (%v), want 1 and 1", created, len(active), err)
	}
}

func testScanExportFilters(t *testing.T, open Opener) {
	db, clk := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	old := addFailed(t, db, s, 2)
	clk.Add(time.Hour)
	recent := addFailed(t, db, s, 5)
	// Two recent events leave failure before the export starts.
	enable(t, db, s)
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
		if got := scanJob(t, db, job, clk.Now().Add(-30*time.Minute), chunk); !slices.Equal(got, want) {
			t.Errorf("chunk %d: got %v, want %v", chunk, got, want)
		}
	}
	if got := scanJob(t, db, job, time.Time{}, 3); !slices.Equal(got, append(slices.Clone(old), want...)) {
		t.Errorf("without a window: got %v, want the old events too", got)
	}
	// A window that starts just after the recent failures leaves them out.
	if got := scanJob(t, db, job, clk.Now().Add(time.Nanosecond), 3); len(got) != 0 {
		t.Errorf("a window after every failure: got %v, want none", got)
	}
	// The fields of a line.
	var seen []store.ExportEvent
	next, done, err := db.ScanExport(job, 0, time.Time{}, 1, func(e *store.ExportEvent) error {
		c := *e
		c.Type, c.Payload, c.Endpoint, c.Txn = slices.Clone(e.Type), slices.Clone(e.Payload), slices.Clone(e.Endpoint), slices.Clone(e.Txn)
		seen = append(seen, c)
		return nil
	})
	if err != nil || len(seen) != 1 || next != 1 || done {
		t.Fatalf("got %d events, next %d, done %v, %v; want 1 event, next 1, not done", len(seen), next, done, err)
	}
	full, err := db.Event(s.CustomerID, s.ID, old[0])
	if err != nil {
		t.Fatal(err)
	}
	x := seen[0]
	if x.ID != full.ID || !x.CreatedAt.Equal(full.CreatedAt) || x.Toe != full.Toe || string(x.Type) != full.Type ||
		string(x.Txn) != full.Txn || string(x.Payload) != string(full.Payload) || string(x.Endpoint) != full.Endpoint ||
		len(x.JWS) != 0 || x.Jti != (uuid.UUID{}) {
		t.Errorf("got %+v, want the fields of %+v", x, full)
	}
	// The last chunk reports the end of the range, without a call more.
	if _, done, err := db.ScanExport(job, 0, time.Time{}, 7, func(*store.ExportEvent) error { return nil }); err != nil || !done {
		t.Errorf("a chunk as long as the range: got done %v, %v; want done", done, err)
	}
	stop := errors.New("stop")
	if _, _, err := db.ScanExport(job, 0, time.Time{}, 10, func(*store.ExportEvent) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("callback error: got %v, want it returned", err)
	}
}

func testExportsListAndLookup(t *testing.T, open Opener) {
	db, clk := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	addFailed(t, db, s, 1)
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
		clk.Add(time.Hour)
	}
	list, err := db.Exports(s.CustomerID, s.ID, clk.Now().Add(-150*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != ids[1] || list[1].ID != ids[2] {
		t.Errorf("got %d jobs, want the last two, oldest first", len(list))
	}
	// since is inclusive.
	if list, _ := db.Exports(s.CustomerID, s.ID, clk.Now().Add(-time.Hour)); len(list) != 1 || list[0].ID != ids[2] {
		t.Errorf("since the last job's creation: got %d jobs, want the last one", len(list))
	}
	if _, err := db.Exports(uuid.New(), s.ID, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another customer's list: got %v, want ErrNotFound", err)
	}
	other := failingSub(t, db, s.CustomerID)
	if list, err := db.Exports(s.CustomerID, other.ID, time.Time{}); err != nil || list == nil || len(list) != 0 {
		t.Errorf("a subscription without jobs: got %v, %v; want an empty list", list, err)
	}
	if _, err := db.Export(s.CustomerID, other.ID, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a job through another subscription: got %v, want ErrNotFound", err)
	}
	if _, err := db.Export(uuid.New(), s.ID, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a job through another customer: got %v, want ErrNotFound", err)
	}
	if j, err := db.Export(s.CustomerID, s.ID, ids[0]); err != nil || j.State != store.ExportCanceled {
		t.Errorf("Export: got %+v, %v", j, err)
	}
}

func testResumeExport(t *testing.T, open Opener) {
	db, _ := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	addFailed(t, db, s, 2)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ResumeExport(job.ID)
	wantConflict(t, "resume while processing", err, "")
	for attempt := 1; attempt <= 2; attempt++ {
		j, err := db.BeginExportWrite(job.ID, "k")
		if err != nil || j.Attempts != attempt || j.State != store.ExportWriting || j.Key != "k" {
			t.Fatalf("begin %d: got %+v, %v", attempt, j, err)
		}
		if j, err = db.ResumeExport(job.ID); err != nil || j.State != store.ExportProcessing {
			t.Fatalf("resume %d: got %+v, %v", attempt, j, err)
		}
	}
	if j, err := db.ExportByID(job.ID); err != nil || j.Interruptions() != 2 || j.FromSeq != 0 || j.ToSeq != 2 {
		t.Errorf("after two resumes: got %+v, %v; want 2 interruptions and the range kept", j, err)
	}
	if n := exportableOf(t, db, s); n != 2 {
		t.Errorf("got %d exportable, want 2", n)
	}
}

// testRetryExport: a write that failed on the blob store puts the job back
// in processing with its retry state; the job stays active (its events
// reserved), its blob errors do not count as interruptions, and failing it
// keeps the reason for the customer and the detail for the operator.
func testRetryExport(t *testing.T, open Opener) {
	db, clk := openExports(t, open)
	s := failingSub(t, db, uuid.New())
	ids := addFailed(t, db, s, 2)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.RetryExport(job.ID, clk.Now(), "x")
	wantConflict(t, "retry while processing", err, "")
	first := clk.Now()
	for n := 1; n <= 2; n++ {
		if _, err := db.BeginExportWrite(job.ID, "k"); err != nil {
			t.Fatal(err)
		}
		at := clk.Now().Add(time.Duration(n) * time.Second)
		j, err := db.RetryExport(job.ID, at, "connection refused")
		if err != nil {
			t.Fatal(err)
		}
		if j.State != store.ExportProcessing || j.BlobErrors != n || !j.RetryAt.Equal(at) || !j.RetryingSince.Equal(first) ||
			j.Error != "connection refused" || j.Interruptions() != 0 || j.FailureReason != "" || !j.UpdatedAt.Equal(clk.Now()) {
			t.Fatalf("retry %d: got %+v", n, j)
		}
		clk.Add(time.Minute)
	}
	if active, _ := db.ActiveExports(); len(active) != 1 || !active[0].RetryAt.After(first) {
		t.Errorf("got active jobs %+v, want the retrying job with its RetryAt", active)
	}
	enable(t, db, s)
	if _, err := db.Redeliver(s.CustomerID, s.ID, ids[0]); !errors.Is(err, store.ErrConflict) {
		t.Errorf("redeliver an event of the retrying job: got %v, want ErrConflict", err)
	}
	j, err := db.FailExport(job.ID, store.FailureStorageUnavailable, "down for 30m")
	if err != nil || j.State != store.ExportFailed || j.FailureReason != store.FailureStorageUnavailable || j.Error != "down for 30m" || !j.RetryAt.IsZero() {
		t.Fatalf("fail: got %+v, %v", j, err)
	}
	if n := exportableOf(t, db, s); n != 2 {
		t.Errorf("got %d exportable after the failure, want 2", n)
	}
}

func testExportStates(t *testing.T, open Opener) {
	db, _ := openExports(t, open)
	got, err := db.ExportStates()
	if err != nil || len(got) != 0 {
		t.Fatalf("empty store: got %v, %v, want no jobs", got, err)
	}
	s := failingSub(t, db, uuid.New())
	addFailed(t, db, s, 2)
	first, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CancelExport(s.CustomerID, s.ID, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0); err != nil {
		t.Fatal(err)
	}
	got, err = db.ExportStates()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[store.ExportCanceled] != 1 || got[store.ExportProcessing] != 1 {
		t.Errorf("got %v, want one canceled and one processing", got)
	}
}
