package bolt

import (
	"bytes"
	"encoding/binary"
	"hookd/store"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// Event returns one event of the customer's subscription by id.
func (db *DB) Event(customerID, sub, id uuid.UUID) (store.Event, error) {
	var e store.Event
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
			return err
		}
		return getEventByID(db.refs(tx), sub, id, &e)
	})
	return e, err
}

func getEventByID(refs strRefs, sub, id uuid.UUID, e *store.Event) error {
	tx := refs.tx
	if err := getEvent(refs, sub, store.EventSeq(id), e); err != nil {
		return err
	}
	if e.ID != id {
		return store.ErrNotFound
	}
	exportedAt(tx, e)
	return nil
}

// exportedAt fills e.ExportedAt for a failed event covered by a completed export.
func exportedAt(tx *bbolt.Tx, e *store.Event) {
	if e.FailSeq == 0 || !e.ExportedAt.IsZero() {
		return
	}
	c := tx.Bucket(bucketExportRanges).Cursor()
	k, v := c.Seek(failKey(e.SubscriptionID, e.FailSeq))
	if k == nil || !bytes.HasPrefix(k, e.SubscriptionID[:]) {
		return
	}
	var job store.ExportJob
	if getJSON(tx.Bucket(bucketExports), v, &job) == nil && e.FailSeq > job.FromSeq && e.FailSeq <= job.ToSeq {
		e.ExportedAt = job.CompletedAt
	}
}

// Events lists the customer's subscription's events that match q, oldest
// first (newest first with q.Desc), and the number of matching events. A
// query without conditions takes the number from the subscription's counts
// and reads only up to its page; any condition reads the subscription's
// events to count them.
func (db *DB) Events(customerID, sub uuid.UUID, q store.EventQuery) ([]store.Event, int, error) {
	out := []store.Event{}
	total := 0
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
			return err
		}
		if q.Searches() {
			var err error
			out, total, err = searchEvents(db.refs(tx), sub, q)
			return err
		}
		counted := q.State == 0 && q.Type == "" && q.After.IsZero() && q.Before.IsZero() && q.Reason == 0 && q.Filter == nil
		stored := 0
		if counted {
			st, err := getStats(tx, sub)
			if err != nil {
				return err
			}
			stored = int(st.Waiting + st.Retrying + st.Succeeded + st.Failed)
		}
		// Sequence numbers grow with creation time: walking the keys
		// forward is oldest first, backward newest first, and the first
		// event past the range's far end ends the walk.
		c := tx.Bucket(bucketEvents).Cursor()
		var k, v []byte
		next := c.Next
		tooOld := func(at time.Time) bool { return !q.After.IsZero() && !at.After(q.After) }
		tooNew := func(at time.Time) bool { return !q.Before.IsZero() && !at.Before(q.Before) }
		skip, stop := tooOld, tooNew
		if q.Desc {
			k, v = lastWithPrefix(c, sub[:])
			next = c.Prev
			skip, stop = tooNew, tooOld
		} else {
			k, v = c.Seek(sub[:])
		}
		typ := db.refs(tx).typeMatch(q.Type)
		for ; k != nil && bytes.HasPrefix(k, sub[:]); k, v = next() {
			if counted && (total >= q.Offset+q.Limit || len(out) >= q.Limit) {
				break
			}
			state := recordState(v)
			if q.State != 0 && state != q.State {
				continue
			}
			if q.Reason != 0 && recordReason(v) != q.Reason {
				continue
			}
			at := recordCreatedAt(v)
			if skip(at) {
				continue
			}
			if stop(at) {
				break
			}
			if q.Type != "" && !typ.match(v) {
				continue
			}
			seq := binary.BigEndian.Uint64(k[16:])
			if q.Filter != nil && !q.Filter(seq, state) {
				continue
			}
			total++
			if total <= q.Offset || len(out) >= q.Limit {
				continue
			}
			var e store.Event
			if err := decodeEvent(v, &e, db.refs(tx)); err != nil {
				return err
			}
			e.SubscriptionID, e.Seq = sub, seq
			exportedAt(tx, &e)
			out = append(out, e)
		}
		if counted {
			total = stored
		}
		return nil
	})
	return out, total, err
}

// lastWithPrefix positions c on the last key that starts with prefix and
// returns it (k is nil when there is none).
func lastWithPrefix(c *bbolt.Cursor, prefix []byte) (k, v []byte) {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			end = end[:i+1]
			k, v = c.Seek(end)
			if k == nil {
				return c.Last()
			}
			return c.Prev()
		}
	}
	return c.Last()
}

// Summary returns the counts of the customer's subscription.
func (db *DB) Summary(customerID, sub uuid.UUID) (store.Summary, error) {
	var s store.Summary
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
			return err
		}
		st, err := getStats(tx, sub)
		if err != nil {
			return err
		}
		s = store.Summary{UpdatedAt: st.UpdatedAt, Succeeded: st.Succeeded, Retrying: st.Waiting + st.Retrying, Failed: st.Failed, FailedBy: st.FailedBy}
		c := tx.Bucket(bucketFailures).Cursor()
		for k, _ := c.Seek(failKey(sub, st.Watermark+1)); k != nil && bytes.HasPrefix(k, sub[:]); k, _ = c.Next() {
			s.Exportable++
		}
		return nil
	})
	return s, err
}
