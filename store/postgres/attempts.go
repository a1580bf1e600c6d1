package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// RecordAttempts stores the results of attempts, each with its history rows.
// Results for events that no longer exist are ignored. A retry for a
// subscription that was disabled meanwhile ends in failure. All results
// are stored by one transaction, which the intake's writes of the moment
// share (see groupCommit). The subscriptions' counters are locked before
// their events are read, so that every change of a subscription's events
// (on this node or another) waits for the one under way.
func (db *DB) RecordAttempts(results []store.AttemptResult) error {
	if len(results) == 0 {
		return nil
	}
	return db.group.do(func(g *groupTx) error { return g.recordAttempts(results) })
}

func (g *groupTx) recordAttempts(results []store.AttemptResult) error {
	subIDs := make([]uuid.UUID, 0, len(results))
	subCol, seqCol := make([]uuid.UUID, 0, len(results)), make([]int64, 0, len(results))
	for _, r := range results {
		subIDs = append(subIDs, r.SubscriptionID)
		subCol, seqCol = append(subCol, r.SubscriptionID), append(seqCol, int64(r.Seq))
	}
	subIDs = sortedIDs(subIDs)
	// One round trip reads the subscriptions, locks their counters and
	// then reads the events (results for the events of deleted
	// subscriptions are ignored, as the bolt backend does: it drops their
	// counters with them).
	var b pgx.Batch
	g.queueSubscriptions(&b, subIDs)
	g.stats.queueLock(&b, subIDs)
	var evs []store.Event
	b.Queue(`SELECT `+stateCols+` FROM events
WHERE (subscription_id, seq) IN (SELECT * FROM unnest($1::uuid[], $2::bigint[]))`, subCol, seqCol).Query(func(rows pgx.Rows) error {
		evs = evs[:0]
		for rows.Next() {
			var e store.Event
			if err := scanEvent(rows, &e, false); err != nil {
				return err
			}
			evs = append(evs, e)
		}
		return rows.Err()
	})
	if err := g.send(&b); err != nil {
		return err
	}
	subs := g.subs
	type key struct {
		sub uuid.UUID
		seq uint64
	}
	byKey := make(map[key]*store.Event, len(evs))
	for i := range evs {
		byKey[key{evs[i].SubscriptionID, evs[i].Seq}] = &evs[i]
	}
	now := g.now
	// The writes wait in g.pending for the group's next statements (its
	// counters' at the latest); the events' in one statement after the
	// loop, each with the history rows added since its first result here.
	var changed []*store.Event
	from := map[*store.Event]int{}
	for _, r := range results {
		e := byKey[key{r.SubscriptionID, r.Seq}]
		st := g.stats.m[r.SubscriptionID]
		if e == nil || st == nil || subs[r.SubscriptionID] == nil {
			continue
		}
		on := subs[r.SubscriptionID].Enabled
		if e.State == store.Success {
			continue // a duplicate result
		}
		switch {
		case r.Outcome == store.Delivered:
			st.FailingSince = time.Time{}
		case r.Code != store.ReasonInternal && st.FailingSince.IsZero():
			st.FailingSince = r.StartedAt.UTC()
		}
		if _, ok := from[e]; !ok {
			from[e] = len(e.History)
			changed = append(changed, e)
		}
		wasFailure := e.State == store.Failure // failed by a disable while in flight
		if d, ok := store.PendingDetail(e); ok {
			if err := queueAttemptDetail(&g.pending, e, d); err != nil {
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
			if err := queueAttemptDetail(&g.pending, e, r.Detail(e.Attempts)); err != nil {
				return err
			}
		}
		ended := r.OutcomeAt(now)
		switch {
		case r.Outcome == store.Delivered:
			if wasFailure {
				st.Unfailed(e.Reason)
				e.FailSeq = 0
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
			fail(e, st, now, reason, r.Code, r.StatusCode)
			e.History[len(e.History)-1].At = ended
		}
	}
	var u eventUpdates
	for _, e := range changed {
		if err := u.add(e, from[e]); err != nil {
			return err
		}
	}
	u.queue(&g.pending)
	return nil
}

// FailWaiting marks up to limit events of a disabled subscription that wait
// for an attempt or a retry as failure and reports how many it marked;
// callers repeat until it returns 0.
func (db *DB) FailWaiting(sub uuid.UUID, limit int) (int, error) {
	n := 0
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		n = 0
		s, err := subscriptionByID(ctx, tx, sub)
		if err != nil {
			return err
		}
		if s == nil || s.Enabled {
			return nil
		}
		reason := "subscription disabled"
		if s.DisabledReason != "" {
			reason += ": " + s.DisabledReason
		}
		stats := newStatsCache(tx)
		st, err := stats.get(ctx, sub)
		if err != nil {
			return err
		}
		evs, err := queryEvents(ctx, tx, false, `SELECT `+stateCols+` FROM events
WHERE subscription_id = $1 AND due_at IS NOT NULL ORDER BY due_at, seq LIMIT $2`, sub, max(limit, 0))
		if err != nil {
			return err
		}
		now := db.Now()
		var u eventUpdates
		for i := range evs {
			e := &evs[i]
			e.UpdatedAt = now
			fail(e, st, now, reason, store.ReasonSubscriptionDisabled, 0)
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

// queueAttemptDetail queues on b the write of e's attempt detail d, unless
// one of its attempt is kept already, and the removal of those before the
// last store.KeptAttemptDetails. The event's update, queued after it, does
// not change its key, so the foreign key holds.
func queueAttemptDetail(b *pgx.Batch, e *store.Event, d store.AttemptDetail) error {
	headers, err := json.Marshal(d.Headers)
	if err != nil {
		return err
	}
	if d.Headers == nil {
		headers = []byte("[]")
	}
	b.Queue(`INSERT INTO attempt_details (subscription_id, seq, attempt, status_code, headers, body)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)
ON CONFLICT (subscription_id, seq, attempt) DO NOTHING`,
		e.SubscriptionID, int64(e.Seq), int32(d.Attempt), int32(d.StatusCode), string(headers), d.Body)
	if d.Attempt > store.KeptAttemptDetails {
		b.Queue(`DELETE FROM attempt_details WHERE subscription_id = $1 AND seq = $2 AND attempt <= $3`,
			e.SubscriptionID, int64(e.Seq), int32(d.Attempt-store.KeptAttemptDetails))
	}
	return nil
}

// EventAttempts returns one event of the customer's subscription by id with
// the details kept of its last attempts.
func (db *DB) EventAttempts(customerID, sub, id uuid.UUID) (store.Event, []store.AttemptDetail, error) {
	var e store.Event
	var ds []store.AttemptDetail
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		ds = nil
		if _, err := customerSubscription(ctx, tx, customerID, sub); err != nil {
			return err
		}
		var err error
		if e, err = eventByID(ctx, tx, sub, id); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT attempt, status_code, headers, body FROM attempt_details
WHERE subscription_id = $1 AND seq = $2 ORDER BY attempt`, sub, int64(e.Seq))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d store.AttemptDetail
			var attempt, status int32
			var headers []byte
			if err := rows.Scan(&attempt, &status, &headers, &d.Body); err != nil {
				return err
			}
			if err := json.Unmarshal(headers, &d.Headers); err != nil {
				return err
			}
			d.Attempt, d.StatusCode = int(attempt), int(status)
			ds = append(ds, d)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		ds = store.WithLastDetail(&e, ds)
		return nil
	})
	return e, ds, err
}
