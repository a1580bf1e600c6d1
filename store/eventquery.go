package store

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// Event returns one event of the customer's subscription by id.
func (db *DB) Event(customerID, sub, id uuid.UUID) (Event, error) {
	var e Event
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
			return err
		}
		return getEventByID(tx, sub, id, &e)
	})
	return e, err
}

func getEventByID(tx *bbolt.Tx, sub, id uuid.UUID, e *Event) error {
	if err := getEvent(tx, sub, EventSeq(id), e); err != nil {
		return err
	}
	if e.ID != id {
		return ErrNotFound
	}
	exportedAt(tx, e)
	return nil
}

// exportedAt fills e.ExportedAt for a failed event covered by a completed export.
func exportedAt(tx *bbolt.Tx, e *Event) {
	if e.FailSeq == 0 || !e.ExportedAt.IsZero() {
		return
	}
	c := tx.Bucket(bucketExportRanges).Cursor()
	k, v := c.Seek(failKey(e.SubscriptionID, e.FailSeq))
	if k == nil || !bytes.HasPrefix(k, e.SubscriptionID[:]) {
		return
	}
	var job ExportJob
	if getJSON(tx.Bucket(bucketExports), v, &job) == nil && e.FailSeq > job.FromSeq && e.FailSeq <= job.ToSeq {
		e.ExportedAt = job.CompletedAt
	}
}

// EventQuery selects events in Events.
type EventQuery struct {
	State  State      // 0 for any
	Type   string     // the event type ("entityCreated"...), "" for any
	After  time.Time  // created strictly after, when set
	Before time.Time  // created strictly before, when set
	Desc   bool       // newest first; oldest first when false
	Reason ReasonCode // the event's latest failure code, when set
	Offset int
	Limit  int
	// Filter, when not nil, keeps only the events for which it returns
	// true, given their sequence number and stored state. The dispatcher's
	// in-flight set is applied through it.
	Filter func(seq uint64, state State) bool
}

// Events lists the customer's subscription's events that match q, oldest
// first (newest first with q.Desc), and the number of matching events. A
// query without conditions takes the number from the subscription's counts
// and reads only up to its page; any condition reads the subscription's
// events to count them.
func (db *DB) Events(customerID, sub uuid.UUID, q EventQuery) ([]Event, int, error) {
	out := []Event{}
	total := 0
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
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
		typ := []byte(q.Type)
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
			if q.Type != "" && !bytes.Equal(recordType(v), typ) {
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
			var e Event
			if err := decodeEvent(v, &e); err != nil {
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

// Summary is a subscription's counts over its stored events.
type Summary struct {
	UpdatedAt  time.Time
	Succeeded  uint64
	Retrying   uint64 // awaiting an attempt or a retry
	Failed     uint64
	Exportable uint64 // failed and not yet exported
	// FailedBy counts the failed events by reason code (index: the code);
	// failures recorded before codes existed are in none.
	FailedBy [numReasons]uint64
}

// Summary returns the counts of the customer's subscription.
func (db *DB) Summary(customerID, sub uuid.UUID) (Summary, error) {
	var s Summary
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
			return err
		}
		st, err := getStats(tx, sub)
		if err != nil {
			return err
		}
		s = Summary{UpdatedAt: st.UpdatedAt, Succeeded: st.Succeeded, Retrying: st.Waiting + st.Retrying, Failed: st.Failed, FailedBy: st.FailedBy}
		c := tx.Bucket(bucketFailures).Cursor()
		for k, _ := c.Seek(failKey(sub, st.Watermark+1)); k != nil && bytes.HasPrefix(k, sub[:]); k, _ = c.Next() {
			s.Exportable++
		}
		return nil
	})
	return s, err
}

// Redeliver puts the customer's failed event id back to awaiting-executing
// with a fresh schedule. It is ErrConflict when the event is not in failure,
// the subscription is disabled, or an export of the event is under way.
func (db *DB) Redeliver(customerID, sub, id uuid.UUID) (Event, error) {
	var e Event
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		s, err := getSubscription(tx, customerID, sub)
		if err != nil {
			return err
		}
		if err := getEventByID(tx, sub, id, &e); err != nil {
			return err
		}
		if !s.Enabled {
			return conflict("the subscription is disabled")
		}
		if e.State != Failure {
			return conflict("only events in failure can be redelivered; this one is %s", e.State)
		}
		from, to, active := activeExportRange(tx, sub)
		if active && e.FailSeq > from && e.FailSeq <= to {
			return conflict("the event is part of an export in progress")
		}
		stats := newStatsCache(tx)
		st, err := stats.get(sub)
		if err != nil {
			return err
		}
		now := db.now().UTC()
		if err := requeue(tx, &e, st, now); err != nil {
			return err
		}
		if _, err := putEvent(tx, &e, nil); err != nil {
			return err
		}
		return stats.flush(now)
	})
	return e, err
}

// RedeliverAll redelivers up to limit failed events of the customer's
// subscription and returns how many; callers repeat until it returns 0.
func (db *DB) RedeliverAll(customerID, sub uuid.UUID, limit int) (int, error) {
	return db.RedeliverFailed(customerID, sub, FailedQuery{}, limit)
}

// FailedQuery selects failed events to redeliver; its zero value selects
// all of them.
type FailedQuery struct {
	After  time.Time  // created strictly after, when set
	Before time.Time  // created strictly before, when set
	Reason ReasonCode // failed with this code, when set
}

func (q FailedQuery) matches(v []byte) bool {
	at := recordCreatedAt(v)
	return (q.After.IsZero() || at.After(q.After)) && (q.Before.IsZero() || at.Before(q.Before)) &&
		(q.Reason == ReasonNone || recordReason(v) == q.Reason)
}

// RedeliverFailed redelivers up to limit failed events of the customer's
// subscription that q selects and returns how many; callers repeat until
// it returns fewer than limit.
func (db *DB) RedeliverFailed(customerID, sub uuid.UUID, q FailedQuery, limit int) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		n = 0
		s, err := getSubscription(tx, customerID, sub)
		if err != nil {
			return err
		}
		if !s.Enabled {
			return conflict("the subscription is disabled")
		}
		if _, _, active := activeExportRange(tx, sub); active {
			return conflict("an export of this subscription is in progress")
		}
		// The failure index holds every failed event but those that failed
		// again after an export; a scan finds those when the index is done.
		var seqs []uint64
		events := tx.Bucket(bucketEvents)
		filtered := q != FailedQuery{}
		c := tx.Bucket(bucketFailures).Cursor()
		for k, v := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) && len(seqs) < limit; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(v)
			if filtered {
				if rec := events.Get(eventKey(sub, seq)); rec == nil || !q.matches(rec) {
					continue
				}
			}
			seqs = append(seqs, seq)
		}
		if len(seqs) < limit {
			c := events.Cursor()
			for k, v := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) && len(seqs) < limit; k, v = c.Next() {
				if recordState(v) == Failure && recordFailSeq(v) == 0 && q.matches(v) {
					seqs = append(seqs, binary.BigEndian.Uint64(k[16:]))
				}
			}
		}
		stats := newStatsCache(tx)
		st, err := stats.get(sub)
		if err != nil {
			return err
		}
		now := db.now().UTC()
		var buf []byte
		for _, seq := range seqs {
			var e Event
			if err := getEvent(tx, sub, seq, &e); err != nil {
				continue
			}
			exportedAt(tx, &e)
			if e.State != Failure {
				continue
			}
			if err := requeue(tx, &e, st, now); err != nil {
				return err
			}
			if buf, err = putEvent(tx, &e, buf); err != nil {
				return err
			}
			n++
		}
		return stats.flush(now)
	})
	return n, err
}

// requeue moves a failed event back to awaiting-executing. An event that was
// exported keeps its export time so that it is never exported again.
func requeue(tx *bbolt.Tx, e *Event, st *Stats, now time.Time) error {
	if e.FailSeq > 0 {
		if err := tx.Bucket(bucketFailures).Delete(failKey(e.SubscriptionID, e.FailSeq)); err != nil {
			return err
		}
		if e.FailSeq <= st.Watermark && e.ExportedAt.IsZero() {
			exportedAt(tx, e)
			if e.ExportedAt.IsZero() {
				e.ExportedAt = now
			}
		}
		e.FailSeq = 0
	}
	st.count(Failure, AwaitingExecuting)
	st.unfailed(e.Reason)
	e.State = AwaitingExecuting
	e.DueAt = now
	e.RoundStart = e.Attempts
	e.FailedAt = time.Time{}
	e.UpdatedAt = now
	e.History = append(e.History, HistoryEntry{At: now, State: AwaitingExecuting, Attempt: e.Attempts, Reason: "redelivery requested"})
	return nil
}

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
				var e Event
				if err := getEvent(tx, sub, binary.BigEndian.Uint64(k[16:]), &e); err != nil {
					continue
				}
				if err := deleteEvent(tx, &e); err != nil {
					return err
				}
				st.count(e.State, 0)
				if e.State == Failure {
					st.unfailed(e.Reason)
				}
				n++
			}
		}
		return stats.flush(db.now().UTC())
	})
	return n, err
}

func deleteEvent(tx *bbolt.Tx, e *Event) error {
	if err := unschedule(tx, e); err != nil {
		return err
	}
	if e.FailSeq > 0 {
		if err := tx.Bucket(bucketFailures).Delete(failKey(e.SubscriptionID, e.FailSeq)); err != nil {
			return err
		}
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
		for _, name := range [][]byte{bucketEvents, bucketDue, bucketFailures, bucketExportRanges} {
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
