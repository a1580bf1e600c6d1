package bolt

import (
	"bytes"
	"encoding/binary"
	"hookd/store"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// Stats are a subscription's counters, kept in the same transaction as every
// state change: the shared store.Counters (whose SucceededNow and FailedNow
// statsCache.flush adds to the timeline) and the bolt backend's sequences.
type Stats struct {
	store.Counters
	FailSeq   uint64 // last failure sequence handed out
	Watermark uint64 // failure sequences at or below it are exported
	UpdatedAt time.Time
	// FailingSince is when the first of an unbroken run of failed
	// attempts started; zero after a success (and at a re-enable).
	FailingSince time.Time
}

// The stored counters: statsBaseSize bytes (the counters up to UpdatedAt),
// then FailingSince and one big-endian uint64 per reason code from 1 on;
// a record written before these existed simply ends sooner.
const statsBaseSize = 7 * 8

func putStats(tx *bbolt.Tx, id uuid.UUID, s Stats) error {
	b := make([]byte, 0, statsBaseSize+8*store.NumReasons)
	for _, v := range []uint64{s.Waiting, s.Retrying, s.Succeeded, s.Failed, s.FailSeq, s.Watermark} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	b = appendTime(b, s.UpdatedAt)
	b = appendTime(b, s.FailingSince)
	for _, v := range s.FailedBy[1:] {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return tx.Bucket(bucketSubStats).Put(id[:], b)
}

func getStats(tx *bbolt.Tx, id uuid.UUID) (Stats, error) {
	b := tx.Bucket(bucketSubStats).Get(id[:])
	if len(b) < statsBaseSize || len(b)%8 != 0 {
		return Stats{}, store.ErrNotFound
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[i*8:]) }
	s := Stats{Counters: store.Counters{Waiting: u(0), Retrying: u(1), Succeeded: u(2), Failed: u(3)}, FailSeq: u(4), Watermark: u(5), UpdatedAt: decodeNanos(b[48:])}
	if len(b) >= statsBaseSize+8 {
		s.FailingSince = decodeNanos(b[statsBaseSize:])
	}
	for i := 1; i < int(store.NumReasons) && statsBaseSize+8+8*i <= len(b); i++ {
		s.FailedBy[i] = u(7 + i)
	}
	return s, nil
}

// statsCache accumulates counter changes of one transaction and writes each
// subscription's counters once.
type statsCache struct {
	tx *bbolt.Tx
	m  map[uuid.UUID]*Stats
}

func newStatsCache(tx *bbolt.Tx) *statsCache {
	return &statsCache{tx: tx, m: map[uuid.UUID]*Stats{}}
}

func (c *statsCache) get(id uuid.UUID) (*Stats, error) {
	if s, ok := c.m[id]; ok {
		return s, nil
	}
	s, err := getStats(c.tx, id)
	if err != nil {
		return nil, err
	}
	c.m[id] = &s
	return &s, nil
}

func (c *statsCache) flush(now time.Time) error {
	for id, s := range c.m {
		s.UpdatedAt = now
		if err := putStats(c.tx, id, *s); err != nil {
			return err
		}
		if s.SucceededNow+s.FailedNow > 0 {
			if err := addOutcomes(c.tx, id, now, s.SucceededNow, s.FailedNow); err != nil {
				return err
			}
			s.SucceededNow, s.FailedNow = 0, 0
		}
	}
	return nil
}

func eventKey(sub uuid.UUID, seq uint64) []byte { return join(sub[:], u64(seq)) }

func dueKey(sub uuid.UUID, at time.Time, seq uint64) []byte {
	return join(sub[:], timeKey(at), u64(seq))
}

func failKey(sub uuid.UUID, failSeq uint64) []byte { return join(sub[:], u64(failSeq)) }

// putEvent writes e and keeps the due index in step with its state. bbolt
// keeps a reference to a value until the transaction ends, so the record is
// appended to arena, which only grows: callers pass the returned arena to
// the next putEvent of the same transaction and never reuse it afterwards.
func putEvent(refs strRefs, e *store.Event, arena []byte) ([]byte, error) {
	return putEventRoom(refs, e, arena, 0)
}

// putEventRoom is putEvent with room bytes of room in the record (see
// attemptRoom).
func putEventRoom(refs strRefs, e *store.Event, arena []byte, room int) ([]byte, error) {
	return putEventKept(refs, e, arena, room, nil)
}

// putEventKept is putEventRoom of an event read by getEventKept with
// kept: the parts of its record that still hold are copied as they are.
func putEventKept(refs strRefs, e *store.Event, arena []byte, room int, kept *keptParts) ([]byte, error) {
	tx := refs.tx
	start := len(arena)
	arena, err := appendEventKept(arena, e, refs, room, kept)
	if err != nil {
		return arena, err
	}
	v := arena[start:len(arena):len(arena)]
	if err := tx.Bucket(bucketEvents).Put(eventKey(e.SubscriptionID, e.Seq), v); err != nil {
		return arena, err
	}
	if e.State == store.AwaitingExecuting || e.State == store.AwaitingRetry {
		if err := tx.Bucket(bucketDue).Put(dueKey(e.SubscriptionID, e.DueAt, e.Seq), nil); err != nil {
			return arena, err
		}
	}
	return arena, nil
}

func getEvent(refs strRefs, sub uuid.UUID, seq uint64, e *store.Event) error {
	return getEventKept(refs, sub, seq, e, nil)
}

// getEventKept is getEvent for a rewrite of the event in the same
// transaction (see decodeEventKept); kept may be nil.
func getEventKept(refs strRefs, sub uuid.UUID, seq uint64, e *store.Event, kept *keptParts) error {
	v := refs.tx.Bucket(bucketEvents).Get(eventKey(sub, seq))
	if v == nil {
		return store.ErrNotFound
	}
	if err := decodeEventKept(v, e, refs, kept); err != nil {
		return err
	}
	e.SubscriptionID, e.Seq = sub, seq
	return nil
}

// unschedule removes e's due entry, if it has one.
func unschedule(tx *bbolt.Tx, e *store.Event) error {
	if e.State == store.AwaitingExecuting || e.State == store.AwaitingRetry {
		return tx.Bucket(bucketDue).Delete(dueKey(e.SubscriptionID, e.DueAt, e.Seq))
	}
	return nil
}

// fail moves e to failure with reason and its code, handing out a failure
// sequence unless the event was exported before.
func fail(tx *bbolt.Tx, e *store.Event, st *Stats, now time.Time, reason string, code store.ReasonCode, status int) error {
	st.Count(e.State, store.Failure)
	e.Reason = code
	st.FailedAs(code)
	e.State = store.Failure
	e.FailedAt = now
	e.DueAt = time.Time{}
	if e.ExportedAt.IsZero() {
		st.FailSeq++
		e.FailSeq = st.FailSeq
		failures := tx.Bucket(bucketFailures)
		failures.FillPercent = failuresFill
		if err := failures.Put(failKey(e.SubscriptionID, e.FailSeq), u64(e.Seq)); err != nil {
			return err
		}
	}
	e.History = append(e.History, store.HistoryEntry{At: now, State: store.Failure, Attempt: e.Attempts, StatusCode: status, Reason: reason, Code: code})
	return nil
}

// appendFill is the fill of the events and due pages that the intake
// splits. Its keys are appended at the end of each subscription's range,
// so the left page of a split gets no more keys, and bbolt's default of
// one half would leave half of it empty (the intake's store was 942 bytes
// per 401-byte record with it, 527 with 0.9). The first attempt rewrites
// a record with its token, and those pages split again whatever the fill.
const appendFill = 0.9

// failuresFill is the fill of the failures index's pages: its keys are
// appended in failure order for each subscription and never grow, so a
// page that splits is left full (with bbolt's default of one half the
// index took 6.5 bytes per event of the bench's full store, half of it
// empty).
const failuresFill = 1.0

// AddEvents records every delivery durably and returns what it recorded, in
// the order of deliveries. Deliveries to subscriptions that no longer exist
// are dropped; those to disabled subscriptions are recorded as failure.
// Concurrent calls share commits (see groupCommit). Senders' ids are not
// checked: RecordIntake does that.
func (db *DB) AddEvents(events []store.NewEvent, deliveries []store.Delivery) ([]store.Added, error) {
	var added []store.Added
	err := db.group.do(func(tx *bbolt.Tx) error {
		var err error
		added, err = addEvents(db.refs(tx), db.now().UTC(), events, deliveries, nil)
		return err
	})
	return added, err
}

// addEvents records the deliveries of the events not marked in skip (nil:
// none is).
func addEvents(refs strRefs, now time.Time, events []store.NewEvent, deliveries []store.Delivery, skip []bool) ([]store.Added, error) {
	tx := refs.tx
	var added []store.Added
	stats := newStatsCache(tx)
	subs := map[uuid.UUID]*store.Subscription{}
	evb := tx.Bucket(bucketEvents)
	evb.FillPercent = appendFill
	tx.Bucket(bucketDue).FillPercent = appendFill
	var buf []byte
	random, err := store.RandomParts(len(deliveries))
	if err != nil {
		return nil, err
	}
	for i, d := range deliveries {
		if skip != nil && skip[d.Event] {
			continue
		}
		s, ok := subs[d.SubscriptionID]
		if !ok {
			var sub store.Subscription
			if err := getJSON(tx.Bucket(bucketSubscriptions), d.SubscriptionID[:], &sub); err == nil {
				s = &sub
			}
			subs[d.SubscriptionID] = s
		}
		if s == nil {
			continue
		}
		st, err := stats.get(s.ID)
		if err != nil {
			return nil, err
		}
		seq, err := evb.NextSequence()
		if err != nil {
			return nil, err
		}
		ne := events[d.Event]
		e := store.Event{
			SubscriptionID: s.ID, Seq: seq, ID: store.EventID(seq, random[i]), Jti: ne.ID,
			Type: ne.Type, Txn: ne.Txn, Toe: ne.Toe, Payload: ne.Payload,
			Endpoint: s.Endpoint, CreatedAt: now, UpdatedAt: now,
		}
		e.History = []store.HistoryEntry{{At: now, State: store.AwaitingExecuting}}
		if s.Enabled {
			e.State, e.DueAt = store.AwaitingExecuting, now
			st.Count(0, store.AwaitingExecuting)
		} else if err := fail(tx, &e, st, now, "subscription disabled", store.ReasonSubscriptionDisabled, 0); err != nil {
			return nil, err
		}
		room := 0
		if e.State == store.AwaitingExecuting {
			room = attemptRoom(s.Alg())
		}
		if buf, err = putEventRoom(refs, &e, buf, room); err != nil {
			return nil, err
		}
		added = append(added, store.Added{SubscriptionID: s.ID, ID: e.ID, State: e.State})
	}
	return added, stats.flush(now)
}

// DueEvents returns up to limit events of subscription sub that are due at
// or before now and for which skip (when not nil) returns false, oldest due
// first. next is the due time of the first event left behind, zero when
// none is waiting.
func (db *DB) DueEvents(sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool) (events []store.Event, next time.Time, err error) {
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		// The due entries first, then their records into a slice of their
		// number: an event is a few hundred bytes, and growing the slice
		// as they come copied each several times.
		var seqs []uint64
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]); k, _ = c.Next() {
			at := decodeTime(k[16:24])
			seq := binary.BigEndian.Uint64(k[24:])
			if at.After(now) || len(seqs) >= limit {
				next = at
				break
			}
			if skip != nil && skip(seq) {
				continue
			}
			seqs = append(seqs, seq)
		}
		if len(seqs) == 0 {
			return nil
		}
		events = make([]store.Event, 0, len(seqs))
		for _, seq := range seqs {
			var e store.Event
			if err := getEvent(db.refs(tx), sub, seq, &e); err != nil {
				continue
			}
			events = append(events, e)
		}
		return nil
	})
	return events, next, err
}

// DueSubscriptions returns the ids of subscriptions that have events waiting
// for an attempt, with the earliest due time of each. Deleted subscriptions
// whose events are still being purged are left out.
func (db *DB) DueSubscriptions() (map[uuid.UUID]time.Time, error) {
	out := map[uuid.UUID]time.Time{}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		tombstones := tx.Bucket(bucketTombstones)
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil; {
			var id uuid.UUID
			copy(id[:], k[:16])
			if tombstones.Get(id[:]) == nil {
				out[id] = decodeTime(k[16:24])
			}
			k, _ = c.Seek(prefixEnd(k[:16]))
		}
		return nil
	})
	return out, err
}

// RecordAttempts stores the results of attempts, each with its history rows.
// Results for events that no longer exist are ignored. A retry for a
// subscription that was disabled meanwhile ends in failure. All results
// are stored by one transaction, which the intake's writes of the moment
// share (see groupCommit): callers that record many attempts hand them
// over together rather than one call each.
func (db *DB) RecordAttempts(results []store.AttemptResult) error {
	return db.group.do(func(tx *bbolt.Tx) error {
		now := db.now().UTC()
		stats := newStatsCache(tx)
		enabled := map[uuid.UUID]bool{}
		// A record grows at its first attempt, and the events are mostly
		// attempted in the order they were added: a page that overflows
		// splits with its first part full rather than half empty.
		tx.Bucket(bucketEvents).FillPercent = appendFill
		// The outcome changes neither the event object nor, unless the
		// attempt made a new token, the token: their encoded parts are
		// copied from the record as read (kept), not decoded and encoded
		// again. buf holds every record of the transaction (see putEvent);
		// bbolt has written them once the transaction commits, and the
		// next transaction's outcomes reuse it.
		arena, _ := db.arenas.Get().(*[]byte)
		if arena == nil {
			arena = new([]byte)
		}
		buf := (*arena)[:0]
		if cap(buf) < len(results)*recordSizeHint {
			buf = make([]byte, 0, len(results)*recordSizeHint)
		}
		var kept keptParts
		for _, r := range results {
			var e store.Event
			if err := getEventKept(db.refs(tx), r.SubscriptionID, r.Seq, &e, &kept); err != nil {
				continue
			}
			st, err := stats.get(r.SubscriptionID)
			if err != nil {
				continue
			}
			on, ok := enabled[r.SubscriptionID]
			if !ok {
				var s store.Subscription
				on = getJSON(tx.Bucket(bucketSubscriptions), r.SubscriptionID[:], &s) == nil && s.Enabled
				enabled[r.SubscriptionID] = on
			}
			if err := unschedule(tx, &e); err != nil {
				return err
			}
			if e.State == store.Success {
				continue // a duplicate result
			}
			switch {
			case r.Outcome == store.Delivered:
				st.FailingSince = time.Time{}
			case r.Code != store.ReasonInternal && st.FailingSince.IsZero():
				st.FailingSince = r.StartedAt.UTC()
			}
			wasFailure := e.State == store.Failure // failed by a disable while in flight
			if d, ok := store.PendingDetail(&e); ok {
				if err := addAttemptDetail(tx, e.SubscriptionID, e.Seq, d); err != nil {
					return err
				}
			}
			e.Attempts++
			if r.JWS != "" {
				e.JWS, e.Endpoint = r.JWS, r.Endpoint
			}
			e.UpdatedAt = now
			e.Response = nil
			if r.StatusCode > 0 {
				e.Response = &store.Response{StatusCode: r.StatusCode, Headers: r.Headers}
			}
			e.History = append(e.History, store.HistoryEntry{At: r.StartedAt.UTC(), State: store.Executing, Attempt: e.Attempts, Endpoint: r.Endpoint})
			if r.KeepsDetail() {
				if err := addAttemptDetail(tx, e.SubscriptionID, e.Seq, r.Detail(e.Attempts)); err != nil {
					return err
				}
			}
			ended := r.OutcomeAt(now)
			switch {
			case r.Outcome == store.Delivered:
				if wasFailure {
					st.Unfailed(e.Reason)
					if e.FailSeq > 0 {
						if err := tx.Bucket(bucketFailures).Delete(failKey(e.SubscriptionID, e.FailSeq)); err != nil {
							return err
						}
						e.FailSeq = 0
					}
				}
				st.Count(e.State, store.Success)
				e.State = store.Success
				e.Reason = store.ReasonNone
				e.DueAt = time.Time{}
				e.History = append(e.History, store.HistoryEntry{At: ended, State: store.Success, Attempt: e.Attempts, StatusCode: r.StatusCode})
			case wasFailure:
				st.Unfailed(e.Reason)
				e.Reason = r.Code
				st.FailedAs(e.Reason)
				e.History = append(e.History, store.HistoryEntry{At: ended, State: store.Failure, Attempt: e.Attempts, StatusCode: r.StatusCode, Reason: r.Reason, Code: r.Code})
			case r.Outcome == store.Retry && on && !r.RetryAt.IsZero():
				st.Count(e.State, store.AwaitingRetry)
				e.State = store.AwaitingRetry
				e.Reason = r.Code
				e.DueAt = r.RetryAt.UTC()
				e.History = append(e.History, store.HistoryEntry{At: ended, State: store.AwaitingRetry, Attempt: e.Attempts, StatusCode: r.StatusCode, Reason: r.Reason, Code: r.Code})
			default:
				reason := r.Reason
				if r.Outcome == store.Retry && !on {
					reason += "; subscription disabled"
				}
				if err := fail(tx, &e, st, now, reason, r.Code, r.StatusCode); err != nil {
					return err
				}
				e.History[len(e.History)-1].At = ended
			}
			if buf, err = putEventKept(db.refs(tx), &e, buf, 0, &kept); err != nil {
				return err
			}
			kept.history = e.History[:0] // written: the next event's history reuses it
		}
		*arena = buf[:0]
		tx.OnCommit(func() { db.arenas.Put(arena) })
		return stats.flush(now)
	})
}

// recordSizeHint is about the size of a delivered event's record (the
// bench's: 400 to 600 bytes), what RecordAttempts reserves per outcome.
const recordSizeHint = 512

// FailWaiting marks up to limit events of a disabled subscription that wait
// for an attempt or a retry as failure and reports how many it marked;
// callers repeat until it returns 0.
func (db *DB) FailWaiting(sub uuid.UUID, limit int) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		n = 0
		var s store.Subscription
		if err := getJSON(tx.Bucket(bucketSubscriptions), sub[:], &s); err != nil || s.Enabled {
			return nil
		}
		reason := "subscription disabled"
		if s.DisabledReason != "" {
			reason += ": " + s.DisabledReason
		}
		var seqs []uint64
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) && len(seqs) < limit; k, _ = c.Next() {
			seqs = append(seqs, binary.BigEndian.Uint64(k[24:]))
		}
		now := db.now().UTC()
		stats := newStatsCache(tx)
		st, err := stats.get(sub)
		if err != nil {
			return err
		}
		var buf []byte
		for _, seq := range seqs {
			var e store.Event
			if err := getEvent(db.refs(tx), sub, seq, &e); err != nil {
				continue
			}
			if err := unschedule(tx, &e); err != nil {
				return err
			}
			e.UpdatedAt = now
			if err := fail(tx, &e, st, now, reason, store.ReasonSubscriptionDisabled, 0); err != nil {
				return err
			}
			if buf, err = putEvent(db.refs(tx), &e, buf); err != nil {
				return err
			}
			n++
		}
		return stats.flush(now)
	})
	return n, err
}
