package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// redeliveryConflict is an ErrConflict with the bolt backend's reason texts.
func redeliveryConflict(format string, args ...any) error {
	return &store.ConflictError{Reason: fmt.Sprintf(format, args...)}
}

// activeExport returns the range of the subscription's active export job,
// if there is one (the oldest, as the bolt backend's activeExportRange).
// While it is active, the events in its range keep their state.
func activeExport(ctx context.Context, tx pgx.Tx, sub uuid.UUID) (from, to uint64, ok bool, err error) {
	var doc []byte
	err = tx.QueryRow(ctx, `SELECT job FROM exports WHERE subscription_id = $1 AND state IN ('processing', 'writing')
ORDER BY created_at, id LIMIT 1`, sub).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	var j store.ExportJob
	if err := json.Unmarshal(doc, &j); err != nil {
		return 0, 0, false, err
	}
	return j.FromSeq, j.ToSeq, true, nil
}

// Redeliver puts the customer's failed event id back to awaiting-executing
// with a fresh schedule. It is ErrConflict when the event is not in failure,
// the subscription is disabled, or an export of the event is under way.
func (db *DB) Redeliver(customerID, sub, id uuid.UUID) (store.Event, error) {
	var e store.Event
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		s, err := customerSubscription(ctx, tx, customerID, sub)
		if err != nil {
			return err
		}
		stats := newStatsCache(tx)
		st, err := stats.get(ctx, sub)
		if err != nil {
			return err
		}
		if e, err = eventByID(ctx, tx, sub, id); err != nil {
			return err
		}
		if !s.Enabled {
			return redeliveryConflict("the subscription is disabled")
		}
		if e.State != store.Failure {
			return redeliveryConflict("only events in failure can be redelivered; this one is %s", e.State)
		}
		from, to, active, err := activeExport(ctx, tx, sub)
		if err != nil {
			return err
		}
		if active && e.FailSeq > from && e.FailSeq <= to {
			return redeliveryConflict("the event is part of an export in progress")
		}
		now := db.Now()
		n := len(e.History)
		requeue(&e, st, now)
		var u eventUpdates
		if err := u.add(&e, n); err != nil {
			return err
		}
		if err := u.exec(ctx, tx); err != nil {
			return err
		}
		return stats.flush(ctx, now)
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
// it returns fewer than limit. As in the bolt backend, the events with a
// failure sequence go first, in failure order, then those that failed
// again after an export, in recording order. The events fall due as pace
// spreads them.
func (db *DB) RedeliverFailed(customerID, sub uuid.UUID, q store.FailedQuery, limit int, pace store.Pace) (int, error) {
	n := 0
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		n = 0
		s, err := customerSubscription(ctx, tx, customerID, sub)
		if err != nil {
			return err
		}
		if !s.Enabled {
			return redeliveryConflict("the subscription is disabled")
		}
		stats := newStatsCache(tx)
		st, err := stats.get(ctx, sub)
		if err != nil {
			return err
		}
		if _, _, active, err := activeExport(ctx, tx, sub); err != nil {
			return err
		} else if active {
			return redeliveryConflict("an export of this subscription is in progress")
		}
		where := ""
		args := []any{sub}
		cond := func(sql string, v any) {
			args = append(args, v)
			where += " AND " + strings.ReplaceAll(sql, "?", "$"+strconv.Itoa(len(args)))
		}
		if !q.After.IsZero() {
			cond("created_at > ?", q.After)
		}
		if !q.Before.IsZero() {
			cond("created_at < ?", q.Before)
		}
		if q.Reason != store.ReasonNone {
			cond("reason = ?", int16(q.Reason))
		}
		args = append(args, max(limit, 0))
		lim := " LIMIT $" + strconv.Itoa(len(args))
		evs, err := queryEvents(ctx, tx, false, `SELECT `+stateCols+` FROM events
WHERE subscription_id = $1 AND fail_seq > 0`+where+` ORDER BY fail_seq`+lim, args...)
		if err != nil {
			return err
		}
		if len(evs) < limit {
			args[len(args)-1] = limit - len(evs)
			more, err := queryEvents(ctx, tx, false, `SELECT `+stateCols+` FROM events
WHERE subscription_id = $1 AND fail_seq = 0 AND state = `+strconv.Itoa(int(store.Failure))+where+` ORDER BY seq`+lim, args...)
			if err != nil {
				return err
			}
			evs = append(evs, more...)
		}
		if err := exportedAt(ctx, tx, sub, evs); err != nil {
			return err
		}
		now := db.Now()
		var u eventUpdates
		for i := range evs {
			e := &evs[i]
			if e.State != store.Failure {
				continue
			}
			requeue(e, st, now)
			e.DueAt = pace.Due(now, n)
			if err := u.add(e, 0); err != nil {
				return err
			}
			n++
		}
		if err := u.exec(ctx, tx); err != nil {
			return err
		}
		return stats.flush(ctx, now)
	})
	return n, err
}

// requeue moves a failed event back to awaiting-executing (the bolt
// backend's requeue). An event that was exported keeps its export time
// (e.ExportedAt filled by exportedAt) so that it is never exported again.
func requeue(e *store.Event, st *stats, now time.Time) {
	if e.FailSeq > 0 {
		if e.FailSeq <= st.Watermark && e.ExportedAt.IsZero() {
			e.ExportedAt = now
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
}
