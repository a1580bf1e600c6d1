package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// AddEvents records every delivery durably and returns what it recorded, in
// the order of deliveries. Deliveries to subscriptions that no longer exist
// are dropped; those to disabled subscriptions are recorded as failure.
// Concurrent calls share commits (see groupCommit). Senders' ids are not
// checked: RecordIntake does that.
func (db *DB) AddEvents(events []store.NewEvent, deliveries []store.Delivery) ([]store.Added, error) {
	var added []store.Added
	err := db.group.do(func(g *groupTx) error {
		var err error
		added, err = g.addEvents(events, deliveries, nil)
		return err
	})
	return added, err
}

// addEvents records the deliveries of the events not marked in skip (nil:
// none is).
func (g *groupTx) addEvents(events []store.NewEvent, deliveries []store.Delivery, skip []bool) ([]store.Added, error) {
	var ids []uuid.UUID
	for _, d := range deliveries {
		if skip == nil || !skip[d.Event] {
			ids = append(ids, d.SubscriptionID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	subs, err := g.subscriptions(ids)
	if err != nil {
		return nil, err
	}
	// The counters of an enabled subscription are not locked: its new
	// events are counted apart (statsCache.addWaiting), so that the intake
	// does not wait for the outcomes being recorded for it, here or on
	// another node. A disabled one's are: its events are recorded as
	// failures, each with its failure sequence number.
	var disabled []uuid.UUID
	n := 0
	for _, id := range ids {
		switch s := subs[id]; {
		case s == nil:
		case s.Enabled:
			n++
		default:
			disabled = append(disabled, id)
		}
	}
	if err := g.stats.lock(g.ctx, disabled); err != nil {
		return nil, err
	}
	for _, id := range disabled {
		if g.stats.m[id] != nil {
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	seqs, err := g.nextSeqs(n)
	if err != nil {
		return nil, err
	}
	added := make([]store.Added, 0, n)
	random, err := store.RandomParts(n)
	if err != nil {
		return nil, err
	}
	now := g.now
	for _, d := range deliveries {
		if skip != nil && skip[d.Event] {
			continue
		}
		s := subs[d.SubscriptionID]
		if s == nil || (!s.Enabled && g.stats.m[s.ID] == nil) {
			continue
		}
		seq := seqs[len(added)]
		ne := events[d.Event]
		e := store.Event{
			SubscriptionID: s.ID, Seq: seq, ID: store.EventID(seq, random[len(added)]), Jti: ne.ID,
			Type: ne.Type, Txn: ne.Txn, Toe: ne.Toe, Payload: ne.Payload,
			Endpoint: s.Endpoint, CreatedAt: now, UpdatedAt: now,
		}
		e.History = []store.HistoryEntry{{At: now, State: store.AwaitingExecuting}}
		if s.Enabled {
			e.State, e.DueAt = store.AwaitingExecuting, now
			g.stats.addWaiting(s.ID, 1)
		} else {
			fail(&e, g.stats.m[s.ID], now, "subscription disabled", store.ReasonSubscriptionDisabled, 0)
		}
		if err := g.insert(&e); err != nil {
			return nil, err
		}
		added = append(added, store.Added{SubscriptionID: s.ID, ID: e.ID, State: e.State})
	}
	return added, nil
}

// Event returns one event of the customer's subscription by id: the
// sequence number in the id finds the row, whose id must then match.
func (db *DB) Event(customerID, sub, id uuid.UUID) (store.Event, error) {
	var e store.Event
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := customerSubscription(ctx, tx, customerID, sub); err != nil {
			return err
		}
		var err error
		e, err = eventByID(ctx, tx, sub, id)
		return err
	})
	return e, err
}

// eventByID reads sub's event id, whole, with its export time.
func eventByID(ctx context.Context, tx pgx.Tx, sub, id uuid.UUID) (store.Event, error) {
	var e store.Event
	row := tx.QueryRow(ctx, `SELECT `+eventCols+` FROM events WHERE subscription_id = $1 AND seq = $2`, sub, int64(store.EventSeq(id)))
	if err := scanEvent(row, &e, true); err != nil {
		return store.Event{}, err
	}
	if e.ID != id {
		return store.Event{}, store.ErrNotFound
	}
	evs := []store.Event{e}
	if err := exportedAt(ctx, tx, sub, evs); err != nil {
		return store.Event{}, err
	}
	return evs[0], nil
}

// exportedAt fills ExportedAt of sub's failed events evs that a completed
// export covers (the bolt backend's exportedAt): the first export range
// ending at or above an event's failure sequence names the job, whose
// range must hold it.
func exportedAt(ctx context.Context, tx pgx.Tx, sub uuid.UUID, evs []store.Event) error {
	var idx []int
	var failSeqs []int64
	for i := range evs {
		if evs[i].FailSeq > 0 && evs[i].ExportedAt.IsZero() {
			idx = append(idx, i)
			failSeqs = append(failSeqs, int64(evs[i].FailSeq))
		}
	}
	if len(idx) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `
SELECT f.fs, x.job FROM unnest($2::bigint[]) AS f(fs)
CROSS JOIN LATERAL (
	SELECT job_id FROM export_ranges r WHERE r.subscription_id = $1 AND r.to_fail_seq >= f.fs ORDER BY r.to_fail_seq LIMIT 1
) r
JOIN exports x ON x.id = r.job_id`, sub, failSeqs)
	if err != nil {
		return err
	}
	defer rows.Close()
	completed := map[uint64]time.Time{}
	for rows.Next() {
		var fs int64
		var doc []byte
		if err := rows.Scan(&fs, &doc); err != nil {
			return err
		}
		var job store.ExportJob
		if err := json.Unmarshal(doc, &job); err != nil {
			return err
		}
		if uint64(fs) > job.FromSeq && uint64(fs) <= job.ToSeq {
			completed[uint64(fs)] = job.CompletedAt.UTC()
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, i := range idx {
		if at, ok := completed[evs[i].FailSeq]; ok {
			evs[i].ExportedAt = at
		}
	}
	return nil
}

// Events lists the customer's subscription's events that match q, oldest
// first (newest first with q.Desc), and the number of matching events. A
// query without conditions takes the number from the subscription's
// counts; with conditions the database counts them. A Filter is applied
// to the matching rows' sequence numbers and states in order, as the bolt
// backend does, and the page is read after it.
func (db *DB) Events(customerID, sub uuid.UUID, q store.EventQuery) ([]store.Event, int, error) {
	out := []store.Event{}
	total := 0
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		out, total = []store.Event{}, 0
		if _, err := customerSubscription(ctx, tx, customerID, sub); err != nil {
			return err
		}
		where := []string{"subscription_id = $1"}
		args := []any{sub}
		cond := func(sql string, v any) {
			args = append(args, v)
			where = append(where, strings.ReplaceAll(sql, "?", "$"+strconv.Itoa(len(args))))
		}
		if q.State != 0 {
			cond("state = ?", int16(q.State))
		}
		if q.Reason != 0 {
			cond("reason = ?", int16(q.Reason))
		}
		if !q.After.IsZero() {
			cond("created_at > ?", q.After)
		}
		if !q.Before.IsZero() {
			cond("created_at < ?", q.Before)
		}
		if q.Type != "" {
			cond("type = ?", q.Type)
		}
		// Both searches have an index (schema version 4).
		if q.Txn != "" {
			cond("txn = ?", q.Txn)
		}
		if q.Subject != "" {
			cond("subject = ?", string(store.SubjectJSON(q.Subject)))
		}
		order := " ORDER BY seq"
		if q.Desc {
			order = " ORDER BY seq DESC"
		}
		filter := " WHERE " + strings.Join(where, " AND ")
		limit := max(q.Limit, 0)
		offset := max(q.Offset, 0)

		if q.Filter != nil {
			rows, err := tx.Query(ctx, `SELECT seq, state FROM events`+filter+order, args...)
			if err != nil {
				return err
			}
			var page []uint64
			for rows.Next() {
				var seq int64
				var state int16
				if err := rows.Scan(&seq, &state); err != nil {
					rows.Close()
					return err
				}
				if !q.Filter(uint64(seq), store.State(state)) {
					continue
				}
				total++
				if total > offset && len(page) < limit {
					page = append(page, uint64(seq))
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			evs, err := eventsBySeq(ctx, tx, true, sub, page, "")
			if err != nil {
				return err
			}
			if err := exportedAt(ctx, tx, sub, evs); err != nil {
				return err
			}
			out = append(out, evs...)
			return nil
		}

		if len(where) == 1 {
			st, err := readStats(ctx, tx, sub, false)
			if err != nil {
				return err
			}
			total = int(st.Waiting + st.Retrying + st.Succeeded + st.Failed)
		} else if err := tx.QueryRow(ctx, `SELECT count(*) FROM events`+filter, args...).Scan(&total); err != nil {
			return err
		}
		if limit == 0 {
			return nil
		}
		args = append(args, limit, offset)
		evs, err := queryEvents(ctx, tx, true, `SELECT `+eventCols+` FROM events`+filter+order+
			" LIMIT $"+strconv.Itoa(len(args)-1)+" OFFSET $"+strconv.Itoa(len(args)), args...)
		if err != nil {
			return err
		}
		if err := exportedAt(ctx, tx, sub, evs); err != nil {
			return err
		}
		out = append(out, evs...)
		return nil
	})
	return out, total, err
}

// Summary returns the counts of the customer's subscription.
func (db *DB) Summary(customerID, sub uuid.UUID) (store.Summary, error) {
	var s store.Summary
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := customerSubscription(ctx, tx, customerID, sub); err != nil {
			return err
		}
		st, err := readStats(ctx, tx, sub, false)
		if err != nil {
			return err
		}
		s = store.Summary{UpdatedAt: st.UpdatedAt, Succeeded: st.Succeeded, Retrying: st.Waiting + st.Retrying, Failed: st.Failed, FailedBy: st.FailedBy}
		// fail_seq > 0 lets a generic plan use the partial index of failures.
		var exportable int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM events WHERE subscription_id = $1 AND fail_seq > 0 AND fail_seq > $2`,
			sub, int64(st.Watermark)).Scan(&exportable); err != nil {
			return err
		}
		s.Exportable = uint64(exportable)
		return nil
	})
	return s, err
}

// dueHeads selects the subscriptions with events awaiting an attempt, each
// with its earliest due time, but those deleted whose events are still
// being purged: a skip scan of the due index (one probe per subscription
// with due events, as the bolt backend's walk of its due bucket), so that
// idle subscriptions cost nothing.
const dueHeads = `
WITH RECURSIVE heads AS (
	(SELECT subscription_id, due_at FROM events WHERE due_at IS NOT NULL ORDER BY subscription_id, due_at, seq LIMIT 1)
	UNION ALL
	SELECT n.subscription_id, n.due_at FROM heads h CROSS JOIN LATERAL (
		SELECT e.subscription_id, e.due_at FROM events e
		WHERE e.due_at IS NOT NULL AND e.subscription_id > h.subscription_id
		ORDER BY e.subscription_id, e.due_at, e.seq LIMIT 1
	) n
)
SELECT subscription_id, due_at FROM heads h
WHERE NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.subscription_id = h.subscription_id)`

// scanDueHeads reads dueHeads, calling fn for each row.
func scanDueHeads(ctx context.Context, tx pgx.Tx, fn func(sub uuid.UUID, due time.Time)) error {
	rows, err := tx.Query(ctx, dueHeads)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var sub uuid.UUID
		var due time.Time
		if err := rows.Scan(&sub, &due); err != nil {
			return err
		}
		fn(sub, due.UTC())
	}
	return rows.Err()
}

// DueSubscriptions returns the ids of subscriptions that have events waiting
// for an attempt, with the earliest due time of each. Deleted subscriptions
// whose events are still being purged are left out.
func (db *DB) DueSubscriptions() (map[uuid.UUID]time.Time, error) {
	out := map[uuid.UUID]time.Time{}
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		clear(out)
		return scanDueHeads(ctx, tx, func(sub uuid.UUID, due time.Time) { out[sub] = due })
	})
	return out, err
}

// Backlog returns the events waiting for their first attempt (waiting) and
// for a retry (retrying), summed over every subscription's counters, and
// the earliest due time among them (zero when none waits). Deleted
// subscriptions whose events are still being purged are left out (their
// counters go with them).
func (db *DB) Backlog() (waiting, retrying uint64, oldestDue time.Time, err error) {
	err = db.read(func(ctx context.Context, tx pgx.Tx) error {
		var w, r int64
		// The waiting events counted apart are added (statsCache).
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(waiting), 0)::bigint
	+ (SELECT coalesce(sum(i.waiting), 0) FROM intake_counts i JOIN sub_stats s USING (subscription_id)
		WHERE NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.subscription_id = i.subscription_id))::bigint,
	coalesce(sum(retrying), 0)::bigint FROM sub_stats s
WHERE NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.subscription_id = s.subscription_id)`).Scan(&w, &r); err != nil {
			return err
		}
		waiting, retrying, oldestDue = uint64(w), uint64(r), time.Time{}
		return scanDueHeads(ctx, tx, func(_ uuid.UUID, due time.Time) {
			if oldestDue.IsZero() || due.Before(oldestDue) {
				oldestDue = due
			}
		})
	})
	return waiting, retrying, oldestDue, err
}

// PendingGrowth is zero: the database's space is not the data directory's,
// so hookd keeps no reserve of it for the waiting events' first attempts
// (the database server's own monitoring watches its disk).
func (db *DB) PendingGrowth() (uint64, error) { return 0, nil }

// How many entries of the due index DueEvents reads beyond limit, while it
// skips those its caller names (the attempts in flight): dueScanFirst in
// its first read, which covers the attempts a subscription has in flight
// at the default --max-per-endpoint, so that a read under a backlog reads
// little more than it returns; dueScanPage in each read after that.
const (
	dueScanFirst = 32
	dueScanPage  = 256
)

// DueEvents returns up to limit events of subscription sub that are due at
// or before now and for which skip (when not nil) returns false, oldest due
// first. next is the due time of the first event left behind, zero when
// none is waiting.
func (db *DB) DueEvents(sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool) (events []store.Event, next time.Time, err error) {
	ctx, cancel := db.ctx()
	defer cancel()
	events, next, _, err = dueEvents(ctx, db.pool, sub, now, limit, skip, time.Time{}, nil, nil)
	return events, next, mapErr(err)
}

// dueEvents is DueEvents through q, in two round trips under a backlog:
// one reads the due order from its entries due at or after from (a page of
// it, a few more when skip passes over more than that), one the events
// picked. They are not one snapshot: an event that is no longer due when
// its row is read is left out. first is the due time of the first entry
// read, skipped or not (zero: none). pre, when not nil, queues statements
// sent with the first read (a lane's check); when stop (not nil) then
// returns true, dueEvents reads no further and returns nothing.
func dueEvents(ctx context.Context, q querier, sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool, from time.Time, pre func(b *pgx.Batch), stop func() bool) (events []store.Event, next, first time.Time, err error) {
	var seqs []uint64
	afterAt, afterSeq := from, int64(-1)
	for page := max(limit, 0) + dueScanFirst; ; page = max(limit, 0) + dueScanPage {
		var b pgx.Batch
		if pre != nil {
			pre(&b)
			pre = nil
		}
		n, done := 0, false
		b.Queue(`SELECT e.seq, e.due_at FROM events e
WHERE e.subscription_id = $1 AND e.due_at IS NOT NULL AND (e.due_at, e.seq) > ($2, $3)
ORDER BY e.due_at, e.seq LIMIT $4`, sub, afterAt, afterSeq, page).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var seq int64
				var at time.Time
				if err := rows.Scan(&seq, &at); err != nil {
					return err
				}
				if first.IsZero() {
					first = at.UTC()
				}
				n++
				afterAt, afterSeq = at, seq
				if done {
					continue
				}
				if at.After(now) || len(seqs) >= limit {
					next, done = at.UTC(), true
					continue
				}
				if skip != nil && skip(uint64(seq)) {
					continue
				}
				seqs = append(seqs, uint64(seq))
			}
			return rows.Err()
		})
		if err := q.SendBatch(ctx, &b).Close(); err != nil {
			return nil, time.Time{}, time.Time{}, err
		}
		if stop != nil && stop() {
			return nil, time.Time{}, time.Time{}, nil
		}
		if done || n < page {
			break
		}
	}
	if len(seqs) == 0 {
		return nil, next, first, nil
	}
	events, err = eventsBySeq(ctx, q, true, sub, seqs, "due_at IS NOT NULL")
	return events, next, first, err
}

// sortedIDs returns the distinct ids of ids in byte order.
func sortedIDs(ids []uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return slices.Compact(out)
}
