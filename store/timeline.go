package store

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// TimelineBucket is the span of one timeline record.
const TimelineBucket = time.Hour

// Hour is one subscription's outcomes in the hour starting at Start: the
// events that reached success or failure in it. A plain record: a table
// (subscription_id, hour, succeeded, failed) in a relational backend.
type Hour struct {
	Start     time.Time
	Succeeded uint64
	Failed    uint64
}

func timelineKey(sub uuid.UUID, hour time.Time) []byte {
	return join(sub[:], timeKey(hour.Truncate(TimelineBucket)))
}

// addOutcomes adds succeeded and failed to sub's record of the hour of now.
func addOutcomes(tx *bbolt.Tx, sub uuid.UUID, now time.Time, succeeded, failed uint64) error {
	b := tx.Bucket(bucketTimeline)
	k := timelineKey(sub, now)
	if v := b.Get(k); len(v) == 16 {
		succeeded += binary.BigEndian.Uint64(v)
		failed += binary.BigEndian.Uint64(v[8:])
	}
	return b.Put(k, join(u64(succeeded), u64(failed)))
}

// Timeline returns the customer's subscription sub's hours that saw an
// outcome, from the hour of from up to to, oldest first; hours without
// one are left out.
func (db *DB) Timeline(customerID, sub uuid.UUID, from, to time.Time) ([]Hour, error) {
	var out []Hour
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
			return err
		}
		end := timelineKey(sub, to)
		c := tx.Bucket(bucketTimeline).Cursor()
		for k, v := c.Seek(timelineKey(sub, from)); k != nil && bytes.HasPrefix(k, sub[:]) && bytes.Compare(k, end) <= 0; k, v = c.Next() {
			if len(k) != 24 || len(v) != 16 {
				continue
			}
			out = append(out, Hour{
				Start:     decodeTime(k[16:]),
				Succeeded: binary.BigEndian.Uint64(v),
				Failed:    binary.BigEndian.Uint64(v[8:]),
			})
		}
		return nil
	})
	return out, err
}

// PurgeTimeline deletes up to limit timeline records of hours that ended
// at or before cutoff and returns how many it deleted.
func (db *DB) PurgeTimeline(cutoff time.Time, limit int) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		n = 0
		b := tx.Bucket(bucketTimeline)
		var old [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && len(old) < limit; {
			if len(k) < 16 {
				k, _ = c.Next()
				continue
			}
			sub := uuid.UUID(k[:16])
			// The first hour that still holds events of the window.
			keep := timelineKey(sub, cutoff)
			for ; k != nil && bytes.HasPrefix(k, sub[:]) && bytes.Compare(k, keep) < 0 && len(old) < limit; k, _ = c.Next() {
				old = append(old, bytes.Clone(k))
			}
			// Skip to the next subscription.
			next := sub
			if !incUUID(&next) {
				break
			}
			k, _ = c.Seek(next[:])
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, err
}

// incUUID sets id to the next id in byte order, false after the last one.
func incUUID(id *uuid.UUID) bool {
	for i := len(id) - 1; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			return true
		}
	}
	return false
}
