package jobs

import (
	"errors"
	"hookd/store/bolt"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"hookd/blobsink"
	"hookd/store"
)

// outage makes a real fileblob bucket fail, without wrapping it: a regular
// file where the customer's directory of the export files must go makes
// every write (and removal) of the customer's keys fail with ENOTDIR, as a
// blob store that cannot be reached fails them; removing it heals the
// bucket.
type outage struct {
	t    *testing.T
	path string
}

func newOutage(t *testing.T, dir string, customer uuid.UUID) *outage {
	t.Helper()
	o := &outage{t: t, path: filepath.Join(dir, customer.String())}
	if err := os.WriteFile(o.path, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o *outage) end() {
	o.t.Helper()
	if err := os.Remove(o.path); err != nil {
		o.t.Fatal(err)
	}
}

// openRealClockStore opens a store whose clock is time.Now: inside a
// synctest bubble, the bubble's fake clock.
func openRealClockStore(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(t.TempDir(), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		db.Close()
	})
	return db
}

// TestExportRetriesBlobErrors: an export started while the blob store
// fails waits in processing with its events reserved, is retried with a
// doubling backoff, and completes once the store works again; the blob
// errors are counted. Time is synctest's: the waits are the exporter's
// own timers.
func TestExportRetriesBlobErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := openRealClockStore(t)
		dir := t.TempDir()
		b, err := blobsink.Open(t.Context(), "file://"+filepath.ToSlash(dir))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		s := newSub(t, db, false)
		ids := addFailed(t, db, s, 40)
		down := newOutage(t, dir, s.CustomerID)
		job, err := db.CreateExport(s.CustomerID, s.ID, "", store.DefaultExportScope, 0)
		if err != nil {
			t.Fatal(err)
		}
		ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Log: zerolog.Nop(), PublicURL: testPublicURL,
			RetryFor: time.Hour, RetryBackoff: 10 * time.Second})
		ex.Start(t.Context())
		defer ex.Close()
		start := time.Now()

		get := func() store.ExportJob {
			t.Helper()
			j, err := db.ExportByID(job.ID)
			if err != nil {
				t.Fatal(err)
			}
			return j
		}
		synctest.Wait()
		for n, wait := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
			j := get()
			if j.State != store.ExportProcessing || j.BlobErrors != n+1 || j.FailureReason != "" ||
				!j.RetryAt.Equal(time.Now().Add(wait)) || !j.RetryingSince.Equal(start) || j.Error == "" {
				t.Fatalf("after %d blob errors: got %+v, want processing until %s", n+1, j, wait)
			}
			// The job's events stay reserved to it: they cannot be
			// redelivered, and the customer's next export waits for it.
			if _, err := db.CreateExport(s.CustomerID, s.ID, "", store.DefaultExportScope, 0); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("another export while retrying: got %v, want a conflict", err)
			}
			if sum, _ := db.Summary(s.CustomerID, s.ID); sum.Exportable != uint64(len(ids)) {
				t.Fatalf("got %d exportable, want %d", sum.Exportable, len(ids))
			}
			time.Sleep(wait - time.Millisecond)
			synctest.Wait()
			if got := get().BlobErrors; got != n+1 {
				t.Fatalf("before the backoff of %s ended: got %d blob errors, want %d", wait, got, n+1)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
		}
		if got := testutil.ToFloat64(ex.m.blobErrors.WithLabelValues("write")); got != 4 {
			t.Errorf("blob write errors counted: got %v, want 4", got)
		}
		down.end()
		time.Sleep(80 * time.Second)
		synctest.Wait()
		j := get()
		if j.State != store.ExportCompleted || j.EventCount != int64(len(ids)) || j.BlobErrors != 4 {
			t.Fatalf("after the store healed: got %+v, want completed with %d events", j, len(ids))
		}
		if _, plain := readFile(t, b, j.Key, blobsink.None); len(plain) == 0 {
			t.Error("the file is empty")
		}
		if got := testutil.ToFloat64(ex.m.retried); got != 4 {
			t.Errorf("retries counted: got %v, want 4", got)
		}
	})
}

// TestExportFailsAfterRetryBound: a blob store that stays down fails the
// job after RetryFor with a reason the customer can read; no event
// changes, no file is left, and the pending removal of the failed
// attempt's key is done once the store works again.
func TestExportFailsAfterRetryBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := openRealClockStore(t)
		dir := t.TempDir()
		b, err := blobsink.Open(t.Context(), "file://"+filepath.ToSlash(dir))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		s := newSub(t, db, false)
		addFailed(t, db, s, 7)
		down := newOutage(t, dir, s.CustomerID)
		job, err := db.CreateExport(s.CustomerID, s.ID, "gzip", store.DefaultExportScope, 0)
		if err != nil {
			t.Fatal(err)
		}
		const retryFor = 5 * time.Minute
		ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Log: zerolog.Nop(), PublicURL: testPublicURL, RetryFor: retryFor})
		ex.Start(t.Context())
		defer ex.Close()
		start := time.Now()
		synctest.Wait()

		time.Sleep(retryFor - time.Second)
		synctest.Wait()
		if j, _ := db.ExportByID(job.ID); j.State != store.ExportProcessing {
			t.Fatalf("within the retry bound: got %s, want processing", j.State)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		j, _ := db.ExportByID(job.ID)
		if j.State != store.ExportFailed || j.FailureReason != store.FailureStorageUnavailable || time.Since(start) > retryFor+2*time.Second {
			t.Fatalf("after the retry bound: got %+v, want failed with %q", j, store.FailureStorageUnavailable)
		}
		if sum, _ := db.Summary(s.CustomerID, s.ID); sum.Exportable != 7 {
			t.Errorf("got %d exportable after the failure, want 7", sum.Exportable)
		}
		ex.mu.Lock()
		pending := len(ex.cleanups)
		ex.mu.Unlock()
		if pending != 1 {
			t.Errorf("got %d pending removals, want the failed key's", pending)
		}
		down.end()
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		ex.mu.Lock()
		pending = len(ex.cleanups)
		ex.mu.Unlock()
		if pending != 0 {
			t.Errorf("after the store healed: got %d pending removals, want none", pending)
		}
		assertNoFiles(t, b)
		// The next export of the customer is accepted and works.
		next, err := db.CreateExport(s.CustomerID, s.ID, "", store.DefaultExportScope, 0)
		if err != nil {
			t.Fatal(err)
		}
		ex.Enqueue()
		synctest.Wait()
		if j, _ := db.ExportByID(next.ID); j.State != store.ExportCompleted || j.EventCount != 7 {
			t.Errorf("the next export: got %+v, want completed with 7 events", j)
		}
	})
}

// TestRecoverCountsOnlyInterruptions: writes that failed on the blob store
// are not interruptions: a job left writing by a crash after blob errors
// is written again, not failed as interrupted too often.
func TestRecoverCountsOnlyInterruptions(t *testing.T) {
	db, _ := openStore(t)
	b, err := blobsink.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := newSub(t, db, false)
	addFailed(t, db, s, 3)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.DefaultExportScope, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range DefaultExportMaxAttempts {
		if _, err := db.BeginExportWrite(job.ID, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RetryExport(job.ID, db.Now(), "refused"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.BeginExportWrite(job.ID, "k"); err != nil { // then a crash
		t.Fatal(err)
	}
	if _, err := newTestExporter(db, b).Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if j, _ := db.ExportByID(job.ID); j.State != store.ExportProcessing || j.Interruptions() != 1 {
		t.Fatalf("got %+v, want processing after 1 interruption", j)
	}
}

// TestCanceledRetryCleansUp: a job canceled while it waits for a retry
// changes no event, and the removal its failed attempt left pending is
// done once the store works again.
func TestCanceledRetryCleansUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := openRealClockStore(t)
		dir := t.TempDir()
		b, err := blobsink.Open(t.Context(), "file://"+filepath.ToSlash(dir))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		s := newSub(t, db, false)
		addFailed(t, db, s, 4)
		down := newOutage(t, dir, s.CustomerID)
		job, err := db.CreateExport(s.CustomerID, s.ID, "", store.DefaultExportScope, 0)
		if err != nil {
			t.Fatal(err)
		}
		ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Log: zerolog.Nop(), PublicURL: testPublicURL})
		ex.Start(t.Context())
		defer ex.Close()
		synctest.Wait()
		if j, _ := db.ExportByID(job.ID); j.State != store.ExportProcessing || j.BlobErrors != 1 {
			t.Fatalf("got %+v, want processing after a blob error", j)
		}
		if _, err := db.CancelExport(s.CustomerID, s.ID, job.ID); err != nil {
			t.Fatalf("cancel while waiting for a retry: %v", err)
		}
		down.end()
		time.Sleep(time.Minute)
		synctest.Wait()
		ex.mu.Lock()
		pending := len(ex.cleanups)
		ex.mu.Unlock()
		if pending != 0 {
			t.Errorf("got %d pending removals after the store healed, want none", pending)
		}
		if j, _ := db.ExportByID(job.ID); j.State != store.ExportCanceled {
			t.Errorf("got %s, want canceled", j.State)
		}
		if sum, _ := db.Summary(s.CustomerID, s.ID); sum.Exportable != 4 {
			t.Errorf("got %d exportable, want 4", sum.Exportable)
		}
		assertNoFiles(t, b)
	})
}
