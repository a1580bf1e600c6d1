package bolt

import (
	"bytes"
	"encoding/binary"
	"hookd/store"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// PurgeExpiredEvents deletes up to limit events created before cutoff and
// returns how many it deleted.
func (db *DB) PurgeExpiredEvents(cutoff time.Time, limit int) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		n = 0
		stats := newStatsCache(tx)
		subs := tx.Bucket(bucketSubStats).Cursor()
		for sk, _ := subs.First(); sk != nil && n < limit; sk, _ = subs.Next() {
			var sub uuid.UUID
			copy(sub[:], sk)
			var keys [][]byte
			c := tx.Bucket(bucketEvents).Cursor()
			for k, v := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) && n+len(keys) < limit; k, v = c.Next() {
				if !recordCreatedAt(v).Before(cutoff) {
					break
				}
				keys = append(keys, bytes.Clone(k))
			}
			if len(keys) == 0 {
				continue
			}
			st, err := stats.get(sub)
			if err != nil {
				return err
			}
			for _, k := range keys {
				var e store.Event
				if err := getEvent(db.refs(tx), sub, binary.BigEndian.Uint64(k[16:]), &e); err != nil {
					continue
				}
				if err := deleteEvent(tx, &e); err != nil {
					return err
				}
				st.Count(e.State, 0)
				if e.State == store.Failure {
					st.Unfailed(e.Reason)
				}
				n++
			}
		}
		return stats.flush(db.now().UTC())
	})
	return n, err
}

func deleteEvent(tx *bbolt.Tx, e *store.Event) error {
	if err := unschedule(tx, e); err != nil {
		return err
	}
	if e.FailSeq > 0 {
		if err := tx.Bucket(bucketFailures).Delete(failKey(e.SubscriptionID, e.FailSeq)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketAttemptDetails).Delete(eventKey(e.SubscriptionID, e.Seq)); err != nil {
		return err
	}
	return tx.Bucket(bucketEvents).Delete(eventKey(e.SubscriptionID, e.Seq))
}

// Tombstones returns the ids of deleted subscriptions whose data is still being purged.
func (db *DB) Tombstones() ([]uuid.UUID, error) {
	var out []uuid.UUID
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTombstones).ForEach(func(k, _ []byte) error {
			out = append(out, uuid.UUID(k))
			return nil
		})
	})
	return out, err
}

// PurgeDeleted deletes up to limit keys of a deleted subscription's events
// and indexes. It returns the number of events deleted and the number of
// keys (events and their index entries); at 0 keys the subscription's
// events are gone, and DropTombstone removes the tombstone once its export
// jobs are removed too.
func (db *DB) PurgeDeleted(sub uuid.UUID, limit int) (events, keys int, err error) {
	err = db.bolt.Update(func(tx *bbolt.Tx) error {
		events, keys = 0, 0
		if tx.Bucket(bucketTombstones).Get(sub[:]) == nil {
			return nil
		}
		for _, name := range [][]byte{bucketEvents, bucketDue, bucketFailures, bucketExportRanges, bucketTimeline, bucketTimelineMinutes, bucketAttemptDetails} {
			b := tx.Bucket(name)
			var found [][]byte
			c := b.Cursor()
			for k, _ := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) && keys+len(found) < limit; k, _ = c.Next() {
				found = append(found, bytes.Clone(k))
			}
			for _, k := range found {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			if bytes.Equal(name, bucketEvents) {
				events = len(found)
			}
			keys += len(found)
		}
		return nil
	})
	return events, keys, err
}
