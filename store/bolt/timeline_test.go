package bolt

import (
	"hookd/store"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// TestPurgeDeletedTakesTimeline: a deleted subscription's hours and
// minutes go with its events; another's stay.
func TestPurgeDeletedTakesTimeline(t *testing.T) {
	db, _ := openEventsDB(t)
	a := addEvSub(t, db, uuid.New(), "a")
	b := addEvSub(t, db, uuid.New(), "b")
	for _, s := range []store.Subscription{a, b} {
		added := addN(t, db, 1, s)
		mustRecord(t, db, attempt(db, added[0], store.Delivered, 204, time.Time{}))
	}
	if err := db.DeleteSubscription(a.CustomerID, a.ID); err != nil {
		t.Fatal(err)
	}
	for {
		_, keys, err := db.PurgeDeleted(a.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		if keys == 0 {
			break
		}
	}
	for _, bucket := range [][]byte{bucketTimeline, bucketTimelineMinutes} {
		if n := timelineKeys(t, db, bucket, a.ID); n != 0 {
			t.Errorf("%s: got %d records of the deleted subscription, want 0", bucket, n)
		}
		if n := timelineKeys(t, db, bucket, b.ID); n != 1 {
			t.Errorf("%s: got %d records of the other subscription, want 1", bucket, n)
		}
	}
}

// timelineKeys counts sub's records in a timeline bucket.
func timelineKeys(t *testing.T, db *DB, bucket []byte, sub uuid.UUID) int {
	t.Helper()
	n := 0
	if err := db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
			if uuid.UUID(k[:16]) == sub {
				n++
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
