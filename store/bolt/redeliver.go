package bolt

import (
	"bytes"
	"encoding/binary"
	"hookd/store"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// Redeliver puts the customer's failed event id back to awaiting-executing
// with a fresh schedule. It is ErrConflict when the event is not in failure,
// the subscription is disabled, or an export of the event is under way.
func (db *DB) Redeliver(customerID, sub, id uuid.UUID) (store.Event, error) {
	var e store.Event
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		s, err := getSubscription(tx, customerID, sub)
		if err != nil {
			return err
		}
		if err := getEventByID(db.refs(tx), sub, id, &e); err != nil {
			return err
		}
		if !s.Enabled {
			return conflict("the subscription is disabled")
		}
		if e.State != store.Failure {
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
		if _, err := putEvent(db.refs(tx), &e, nil); err != nil {
			return err
		}
		return stats.flush(now)
	})
	return e, err
}

// RedeliverAll redelivers up to limit failed events of the customer's
// subscription and returns how many; callers repeat until it returns 0.
func (db *DB) RedeliverAll(customerID, sub uuid.UUID, limit int) (int, error) {
	return db.RedeliverFailed(customerID, sub, store.FailedQuery{}, limit, store.Pace{})
}

// RedeliverFailed redelivers up to limit failed events of the customer's
// subscription that q selects and returns how many; callers repeat until
// it returns fewer than limit. The events fall due as pace spreads them.
func (db *DB) RedeliverFailed(customerID, sub uuid.UUID, q store.FailedQuery, limit int, pace store.Pace) (int, error) {
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
		filtered := q != store.FailedQuery{}
		c := tx.Bucket(bucketFailures).Cursor()
		for k, v := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) && len(seqs) < limit; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(v)
			if filtered {
				if rec := events.Get(eventKey(sub, seq)); rec == nil || !matchesRecord(q, rec) {
					continue
				}
			}
			seqs = append(seqs, seq)
		}
		if len(seqs) < limit {
			c := events.Cursor()
			for k, v := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) && len(seqs) < limit; k, v = c.Next() {
				if recordState(v) == store.Failure && recordFailSeq(v) == 0 && matchesRecord(q, v) {
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
			var e store.Event
			if err := getEvent(db.refs(tx), sub, seq, &e); err != nil {
				continue
			}
			exportedAt(tx, &e)
			if e.State != store.Failure {
				continue
			}
			if err := requeue(tx, &e, st, now); err != nil {
				return err
			}
			e.DueAt = pace.Due(now, n)
			if buf, err = putEvent(db.refs(tx), &e, buf); err != nil {
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
func requeue(tx *bbolt.Tx, e *store.Event, st *Stats, now time.Time) error {
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
	st.Count(store.Failure, store.AwaitingExecuting)
	st.Unfailed(e.Reason)
	e.State = store.AwaitingExecuting
	e.DueAt = now
	e.RoundStart = e.Attempts
	e.FailedAt = time.Time{}
	e.UpdatedAt = now
	e.History = append(e.History, store.HistoryEntry{At: now, State: store.AwaitingExecuting, Attempt: e.Attempts, Reason: "redelivery requested"})
	return nil
}

// matchesRecord reports whether the encoded event v is one q selects.
func matchesRecord(q store.FailedQuery, v []byte) bool {
	at := recordCreatedAt(v)
	return (q.After.IsZero() || at.After(q.After)) && (q.Before.IsZero() || at.Before(q.Before)) &&
		(q.Reason == store.ReasonNone || recordReason(v) == q.Reason)
}
