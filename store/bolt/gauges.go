package bolt

import (
	"encoding/binary"
	"encoding/json"
	"hookd/store"
	"time"

	"go.etcd.io/bbolt"
)

// Backlog returns the events waiting for their first attempt (waiting) and
// for a retry (retrying), summed over every subscription's counters, and
// the earliest due time among them (zero when none waits). It reads one
// counter record per subscription and the head of each subscription's
// range of the due index, in one read transaction; deleted subscriptions
// whose events are still being purged are left out.
func (db *DB) Backlog() (waiting, retrying uint64, oldestDue time.Time, err error) {
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketSubStats).ForEach(func(_, v []byte) error {
			if len(v) >= statsBaseSize {
				waiting += binary.BigEndian.Uint64(v[0:])
				retrying += binary.BigEndian.Uint64(v[8:])
			}
			return nil
		})
		if err != nil {
			return err
		}
		tombstones := tx.Bucket(bucketTombstones)
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Seek(prefixEnd(k[:16])) {
			if tombstones.Get(k[:16]) != nil {
				continue
			}
			if at := decodeTime(k[16:24]); oldestDue.IsZero() || at.Before(oldestDue) {
				oldestDue = at
			}
		}
		return nil
	})
	return waiting, retrying, oldestDue, err
}

// FirstAttemptBytes is about what an event's first attempt adds to the
// file: the token sent, two history rows and the page space around them,
// for an event of a few hundred bytes (TestRecordingGrowsTheStoreByAConstant
// measures it). Later attempts add a few dozen bytes.
const FirstAttemptBytes = 2048

// PendingGrowth estimates the bytes the file will grow by when the events
// waiting for their first attempt have been attempted, FirstAttemptBytes
// each, so that the free space for them can be kept.
func (db *DB) PendingGrowth() (uint64, error) {
	waiting, _, _, err := db.Backlog()
	return waiting * FirstAttemptBytes, err
}

// ExportStates counts the export jobs kept in the store by state. Jobs stay
// until the janitor removes them at the end of the export retention, so
// the count is bounded by the jobs of that period.
func (db *DB) ExportStates() (map[store.ExportState]int, error) {
	out := map[store.ExportState]int{}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketExports).ForEach(func(_, v []byte) error {
			var j struct {
				State store.ExportState `json:"state"`
			}
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			out[j.State]++
			return nil
		})
	})
	return out, err
}
