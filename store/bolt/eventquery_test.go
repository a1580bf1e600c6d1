package bolt

import (
	"hookd/store"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fakeExport runs an export job of s's unexported failures through the
// store's export API; a completed one moves the watermark.
func fakeExport(t *testing.T, db *DB, s store.Subscription, state store.ExportState) store.ExportJob {
	t.Helper()
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0)
	if err != nil {
		t.Fatalf("create export: %v", err)
	}
	if state == store.ExportCompleted {
		if _, err := db.BeginExportWrite(job.ID, "k"); err != nil {
			t.Fatalf("begin export: %v", err)
		}
		if job, err = db.CompleteExport(job.ID, store.ExportResult{Key: "k"}); err != nil {
			t.Fatalf("complete export: %v", err)
		}
	}
	return job
}

// failAll fails every event of added at once.
func failAll(t *testing.T, db *DB, added []store.Added) {
	t.Helper()
	var rs []store.AttemptResult
	for _, a := range added {
		rs = append(rs, attempt(db, a, store.Failed, 301, time.Time{}))
	}
	mustRecord(t, db, rs...)
}

// TestRecordType reads the type of encoded events without decoding them.
func TestRecordType(t *testing.T) {
	for _, typ := range []string{"entityCreated", "entityDeleted", ""} {
		e := store.Event{ID: uuid.New(), Type: typ, Txn: "t", Toe: -5, Attempts: 300, RoundStart: 200, CreatedAt: time.Now()}
		if got := string(recordType(appendEvent(nil, &e))); got != typ {
			t.Errorf("got %q, want %q", got, typ)
		}
	}
	if got := recordType([]byte{codecVersion}); got != nil {
		t.Errorf("short record: got %q, want nil", got)
	}
}
