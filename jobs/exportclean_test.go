package jobs

import (
	"hookd/store/bolt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/blobsink"
	"hookd/store"
)

// completedExport runs an export of n new failures of s to completion.
func completedExport(t *testing.T, db *bolt.DB, ex *Exporter, s store.Subscription, n int) store.ExportJob {
	t.Helper()
	addFailed(t, db, s, n)
	job, err := db.CreateExport(s.CustomerID, s.ID, "gzip", store.ScopeSubscription, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ex.RunOnce(t.Context()); err != nil || got != 1 {
		t.Fatalf("RunOnce: got %d, %v", got, err)
	}
	job, err = db.ExportByID(job.ID)
	if err != nil || job.State != store.ExportCompleted {
		t.Fatalf("got %+v, %v; want completed", job, err)
	}
	return job
}

func listKeys(t *testing.T, be backend) []string {
	t.Helper()
	var keys []string
	if err := blobsink.ListPrefix(t.Context(), be.bucket, "", func(key string, _ time.Time, _ int64) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

func TestExportCleaner(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		db, clk := openStore(t)
		ex := newTestExporter(db, be.bucket)
		c := &ExportCleaner{DB: db, Bucket: be.bucket, Retention: 7 * 24 * time.Hour, Batch: 2}

		// The store's clock starts at the real time, which the bucket
		// uses for the files' modification times.
		kept := newSub(t, db, false)
		old := completedExport(t, db, ex, kept, 3)
		addFailed(t, db, kept, 1)
		canceled, err := db.CreateExport(kept.CustomerID, kept.ID, "", store.ScopeSubscription, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CancelExport(kept.CustomerID, kept.ID, canceled.ID); err != nil {
			t.Fatal(err)
		}
		// Files no job owns: one of an unknown job, one stranded temporary
		// file of a completed job, and a key outside the export layout,
		// which is never touched.
		orphan := blobsink.Key(uuid.NewString(), uuid.NewString(), uuid.NewString(), blobsink.None)
		stranded := old.Key + ".18a2b3c4d5e6f708.tmp"
		foreign := "notes/readme.txt"
		for _, k := range []string{orphan, stranded, foreign} {
			if err := be.bucket.WriteAll(t.Context(), k, []byte("x\n"), nil); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := c.DeleteOrphans(t.Context()); err != nil || n != 0 {
			t.Errorf("young orphans: got %d, %v; want 0 deleted", n, err)
		}

		clk.add(6 * 24 * time.Hour)
		young := completedExport(t, db, ex, kept, 2)
		gone := newSub(t, db, false)
		goneJobs := []store.ExportJob{completedExport(t, db, ex, gone, 1), completedExport(t, db, ex, gone, 1), completedExport(t, db, ex, gone, 1)}
		if err := db.DeleteSubscription(gone.CustomerID, gone.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := DeletedSubscriptionsTask(db, 10).Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n, err := c.DeleteDeletedSubscriptions(t.Context()); err != nil || n != len(goneJobs) {
			t.Errorf("deleted subscription: got %d, %v; want %d jobs", n, err, len(goneJobs))
		}
		if stones, _ := db.Tombstones(); len(stones) != 0 {
			t.Errorf("got tombstones %v, want none", stones)
		}
		for _, j := range goneJobs {
			if ok, _ := be.bucket.Exists(t.Context(), j.Key); ok {
				t.Errorf("file %s of a deleted subscription is still there", j.Key)
			}
		}

		// A day later the first jobs are past retention.
		clk.add(24*time.Hour + time.Minute)
		if n, err := c.DeleteExpired(t.Context()); err != nil || n != 2 {
			t.Errorf("expired: got %d, %v; want 2 jobs", n, err)
		}
		if _, err := db.ExportByID(old.ID); err == nil {
			t.Error("the expired job is still there")
		}
		if _, err := db.ExportByID(canceled.ID); err == nil {
			t.Error("the expired canceled job is still there")
		}
		if n, err := c.DeleteOrphans(t.Context()); err != nil || n != 2 {
			t.Errorf("orphans: got %d, %v; want 2", n, err)
		}
		if n, err := c.DeleteOrphans(t.Context()); err != nil || n != 0 {
			t.Errorf("orphans again: got %d, %v; want 0", n, err)
		}
		want := []string{foreign, young.Key}
		slices.Sort(want)
		if got := listKeys(t, be); !slices.Equal(got, want) {
			t.Errorf("got keys %v, want %v", got, want)
		}
		if j, err := db.ExportByID(young.ID); err != nil || j.State != store.ExportCompleted {
			t.Errorf("young job: got %+v, %v; want it kept", j, err)
		}
	})
}

func TestExportKeyJob(t *testing.T) {
	c, s, j := uuid.New(), uuid.New(), uuid.New()
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{blobsink.Key(c.String(), s.String(), j.String(), blobsink.None), true},
		{blobsink.Key(c.String(), s.String(), j.String(), blobsink.Zstd), true},
		{blobsink.Key(c.String(), s.String(), j.String(), blobsink.Gzip) + ".17f0a1b2c3d4e5f6.tmp", true},
		{blobsink.Key("c-1", s.String(), j.String(), blobsink.None), false},
		{c.String() + "/" + s.String() + "/readme.txt", false},
		{"a/b", false},
	} {
		id, ok := exportKeyJob(tc.key)
		if ok != tc.ok || (ok && id != j) {
			t.Errorf("exportKeyJob(%q): got %s, %v; want %v", tc.key, id, ok, tc.ok)
		}
	}
}
