package bolt

import (
	"bytes"
	"encoding/binary"
	"hookd/store"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

func timelineKey(sub uuid.UUID, at time.Time, span time.Duration) []byte {
	return join(sub[:], timeKey(at.Truncate(span)))
}

// addOutcomes adds succeeded and failed to sub's records of the hour and
// the minute of now, and removes sub's minutes older than MinuteWindow.
func addOutcomes(tx *bbolt.Tx, sub uuid.UUID, now time.Time, succeeded, failed uint64) error {
	for _, t := range []struct {
		bucket []byte
		span   time.Duration
	}{{bucketTimeline, store.TimelineHour}, {bucketTimelineMinutes, store.TimelineMinute}} {
		b := tx.Bucket(t.bucket)
		k := timelineKey(sub, now, t.span)
		s, f := succeeded, failed
		if v := b.Get(k); len(v) == 16 {
			s += binary.BigEndian.Uint64(v)
			f += binary.BigEndian.Uint64(v[8:])
		}
		if err := b.Put(k, join(u64(s), u64(f))); err != nil {
			return err
		}
	}
	// At most the minutes of the window before this write are old.
	b := tx.Bucket(bucketTimelineMinutes)
	keep := timelineKey(sub, now.Add(-store.MinuteWindow), store.TimelineMinute)
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) && bytes.Compare(k, keep) < 0; k, _ = c.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Timeline returns the customer's subscription sub's hours that saw an
// outcome, from the hour of from up to to, oldest first; hours without
// one are left out.
func (db *DB) Timeline(customerID, sub uuid.UUID, from, to time.Time) ([]store.Outcomes, error) {
	return db.timeline(bucketTimeline, store.TimelineHour, customerID, sub, from, to)
}

// TimelineMinutes returns sub's minutes that saw an outcome, from the
// minute of from (no earlier than MinuteWindow before to) up to to,
// oldest first.
func (db *DB) TimelineMinutes(customerID, sub uuid.UUID, from, to time.Time) ([]store.Outcomes, error) {
	if start := to.Add(-store.MinuteWindow); from.Before(start) {
		from = start
	}
	return db.timeline(bucketTimelineMinutes, store.TimelineMinute, customerID, sub, from, to)
}

func (db *DB) timeline(bucket []byte, span time.Duration, customerID, sub uuid.UUID, from, to time.Time) ([]store.Outcomes, error) {
	var out []store.Outcomes
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
			return err
		}
		end := timelineKey(sub, to, span)
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(timelineKey(sub, from, span)); k != nil && bytes.HasPrefix(k, sub[:]) && bytes.Compare(k, end) <= 0; k, v = c.Next() {
			if len(k) != 24 || len(v) != 16 {
				continue
			}
			out = append(out, store.Outcomes{
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
// at or before cutoff, and of minutes older than MinuteWindow (those of
// subscriptions without a recent outcome), and returns how many it deleted.
func (db *DB) PurgeTimeline(cutoff time.Time, limit int) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		n = 0
		for _, t := range []struct {
			bucket []byte
			span   time.Duration
			cutoff time.Time
		}{{bucketTimeline, store.TimelineHour, cutoff}, {bucketTimelineMinutes, store.TimelineMinute, db.now().Add(-store.MinuteWindow)}} {
			b := tx.Bucket(t.bucket)
			var old [][]byte
			c := b.Cursor()
			for k, _ := c.First(); k != nil && n+len(old) < limit; {
				if len(k) < 16 {
					k, _ = c.Next()
					continue
				}
				sub := uuid.UUID(k[:16])
				// The first span that is still kept.
				keep := timelineKey(sub, t.cutoff, t.span)
				for ; k != nil && bytes.HasPrefix(k, sub[:]) && bytes.Compare(k, keep) < 0 && n+len(old) < limit; k, _ = c.Next() {
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
			n += len(old)
		}
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
