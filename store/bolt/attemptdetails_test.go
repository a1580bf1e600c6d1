package bolt

import (
	"hookd/store"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// detailKeys counts the keys of the attempt details bucket.
func detailKeys(t *testing.T, db *DB) int {
	t.Helper()
	n := 0
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAttemptDetails).ForEach(func(_, _ []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAttemptDetailsLeaveNoKeys: the details of an event go with it when
// the janitor purges it and when its subscription's data is purged, and
// an event delivered at its first attempt with an empty body writes none,
// nor does one that failed without a body until its next attempt.
func TestAttemptDetailsLeaveNoKeys(t *testing.T) {
	db, _ := openEventsDB(t)
	sub := addEvSub(t, db, uuid.New(), "s")
	added := addN(t, db, 3, sub)
	failed := attempt(db, added[0], store.Retry, 500, db.Now().Add(time.Hour))
	failed.Body = []byte("down")
	withBody := attempt(db, added[1], store.Delivered, 200, time.Time{})
	withBody.Body = []byte("ok")
	plain := attempt(db, added[2], store.Delivered, 204, time.Time{})
	mustRecord(t, db, failed, withBody, plain)
	if n := detailKeys(t, db); n != 2 {
		t.Fatalf("got %d detail keys, want 2 (the failed attempt and the body; none for the 204)", n)
	}
	bare := addN(t, db, 1, sub)[0]
	mustRecord(t, db, attempt(db, bare, store.Retry, 503, db.Now().Add(time.Hour)))
	if n := detailKeys(t, db); n != 2 {
		t.Fatalf("after a failure without a body: got %d detail keys, want 2 (the event's response holds it)", n)
	}
	mustRecord(t, db, attempt(db, bare, store.Retry, 503, db.Now().Add(time.Hour)))
	if n := detailKeys(t, db); n != 3 {
		t.Fatalf("after its next attempt: got %d detail keys, want 3 (the first failure's, kept)", n)
	}
	if n, err := db.PurgeExpiredEvents(db.Now().Add(time.Second), 1); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if n := detailKeys(t, db); n != 2 {
		t.Fatalf("after purging the first event: got %d detail keys, want 2", n)
	}
	if err := db.DeleteSubscription(sub.CustomerID, sub.ID); err != nil {
		t.Fatal(err)
	}
	for {
		_, keys, err := db.PurgeDeleted(sub.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		if keys == 0 {
			break
		}
	}
	if n := detailKeys(t, db); n != 0 {
		t.Fatalf("after purging the deleted subscription: got %d detail keys, want 0", n)
	}
}
