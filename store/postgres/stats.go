package postgres

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// stats are a subscription's counters (the sub_stats row), read for update
// and written back once per transaction by statsCache: the shared
// store.Counters, so that both backends count the same, and the failure
// sequences.
type stats struct {
	store.Counters
	FailSeq, Watermark      uint64
	UpdatedAt, FailingSince time.Time
}

// statsCache reads each subscription's counters once per transaction, for
// update (so concurrent transactions on one subscription's counters wait
// for each other, on one node or several), and writes each back once.
//
// The intake counts its new waiting events without that lock (addWaiting):
// a transaction that has not read a subscription's counters appends the
// count to intake_counts instead, so that the intake of one node never
// waits for the outcomes another node is recording for the same
// subscription (nor for their commit's flush). The rows are folded into
// sub_stats by the next transaction that reads the counters for update,
// and added to them by every read that does not lock (see readStats).
type statsCache struct {
	send    func(ctx context.Context, b *pgx.Batch) error // sends statements of the transaction
	m       map[uuid.UUID]*stats
	waiting map[uuid.UUID]uint64 // new waiting events of subscriptions not in m
}

// newStatsCache returns the counters' cache of tx.
func newStatsCache(tx pgx.Tx) *statsCache {
	return newStatsCacheSending(func(ctx context.Context, b *pgx.Batch) error { return tx.SendBatch(ctx, b).Close() })
}

// newStatsCacheSending returns a counters' cache whose statements go
// through send (a group's transaction, which sends them with others).
func newStatsCacheSending(send func(ctx context.Context, b *pgx.Batch) error) *statsCache {
	return &statsCache{send: send, m: map[uuid.UUID]*stats{}}
}

// get returns sub's counters; store.ErrNotFound when sub has none (it
// was deleted), as in the bolt backend.
func (c *statsCache) get(ctx context.Context, sub uuid.UUID) (*stats, error) {
	if err := c.lock(ctx, []uuid.UUID{sub}); err != nil {
		return nil, err
	}
	if s := c.m[sub]; s != nil {
		return s, nil
	}
	return nil, store.ErrNotFound
}

// addWaiting counts n new events of sub waiting for their first attempt:
// in its counters when this transaction read them, else apart until flush.
func (c *statsCache) addWaiting(sub uuid.UUID, n uint64) {
	if s := c.m[sub]; s != nil {
		s.Waiting += n
		return
	}
	if c.waiting == nil {
		c.waiting = map[uuid.UUID]uint64{}
	}
	c.waiting[sub] += n
}

// lock reads the counters of subs for update in one round trip (see
// queueLock).
func (c *statsCache) lock(ctx context.Context, subs []uuid.UUID) error {
	var b pgx.Batch
	c.queueLock(&b, subs)
	if b.Len() == 0 {
		return nil
	}
	return c.send(ctx, &b)
}

// queueLock queues on b the read for update of the counters of subs not
// read yet, in the order of their ids (so that transactions locking
// several wait for each other rather than deadlock), and their fold (see
// queueFold). A subscription without counters (deleted meanwhile) is left
// out of c.m: callers drop its events, as the bolt backend does.
func (c *statsCache) queueLock(b *pgx.Batch, subs []uuid.UUID) {
	var want []uuid.UUID
	for _, s := range subs {
		if _, ok := c.m[s]; !ok && !slices.Contains(want, s) {
			want = append(want, s)
		}
	}
	if len(want) == 0 {
		return
	}
	slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	b.Queue(`SELECT subscription_id, waiting, retrying, succeeded, failed, fail_seq, watermark,
	updated_at, failing_since, failed_by
FROM sub_stats WHERE subscription_id = ANY($1) ORDER BY subscription_id FOR UPDATE`, want).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				sub                           uuid.UUID
				s                             stats
				waiting, retrying, succ, fail int64
				failSeq, watermark            int64
				updatedAt, failingSince       *time.Time
				failedBy                      []int64
			)
			if err := rows.Scan(&sub, &waiting, &retrying, &succ, &fail, &failSeq, &watermark, &updatedAt, &failingSince, &failedBy); err != nil {
				return err
			}
			s.Waiting, s.Retrying, s.Succeeded, s.Failed = uint64(waiting), uint64(retrying), uint64(succ), uint64(fail)
			s.FailSeq, s.Watermark = uint64(failSeq), uint64(watermark)
			s.UpdatedAt, s.FailingSince = derefTime(updatedAt), derefTime(failingSince)
			for i := 0; i < len(failedBy) && i < int(store.NumReasons); i++ {
				s.FailedBy[i] = uint64(failedBy[i])
			}
			c.m[sub] = &s
		}
		return rows.Err()
	})
	c.queueFold(b, want)
}

// queueFold queues on b the fold into the counters of subs, read for
// update just before, of the waiting events counted apart: those of
// intake_counts, whose rows it deletes (rows of transactions not yet
// committed are left to a later fold), and this transaction's own.
func (c *statsCache) queueFold(b *pgx.Batch, subs []uuid.UUID) {
	b.Queue(`DELETE FROM intake_counts WHERE subscription_id = ANY($1) RETURNING subscription_id, waiting, added_at`, subs).Query(func(rows pgx.Rows) error {
		for _, sub := range subs {
			if s, n := c.m[sub], c.waiting[sub]; s != nil && n > 0 {
				s.Waiting += n
				delete(c.waiting, sub)
			}
		}
		for rows.Next() {
			var (
				sub uuid.UUID
				n   int64
				at  time.Time
			)
			if err := rows.Scan(&sub, &n, &at); err != nil {
				return err
			}
			if s := c.m[sub]; s != nil {
				s.Waiting += uint64(n)
				if at.After(s.UpdatedAt) {
					s.UpdatedAt = at.UTC()
				}
			}
		}
		return rows.Err()
	})
}

// flush writes the counters read by get, the waiting events counted apart
// (addWaiting) and the outcomes to the timeline, all in one round trip.
func (c *statsCache) flush(ctx context.Context, now time.Time) error {
	var b pgx.Batch
	c.queueFlush(&b, now)
	if b.Len() == 0 {
		return nil
	}
	return c.send(ctx, &b)
}

// queueFlush queues on b the writes of flush.
func (c *statsCache) queueFlush(b *pgx.Batch, now time.Time) {
	if len(c.waiting) > 0 {
		subs, counts := make([]uuid.UUID, 0, len(c.waiting)), make([]int64, 0, len(c.waiting))
		for sub, n := range c.waiting {
			subs, counts = append(subs, sub), append(counts, int64(n))
		}
		b.Queue(`INSERT INTO intake_counts (subscription_id, waiting, added_at) SELECT s, n, $3 FROM unnest($1::uuid[], $2::bigint[]) AS c(s, n)`,
			subs, counts, now)
		c.waiting = nil
	}
	for sub, s := range c.m {
		s.UpdatedAt = now
		failedBy := make([]int64, store.NumReasons)
		for i, n := range s.FailedBy {
			failedBy[i] = int64(n)
		}
		b.Queue(`
UPDATE sub_stats SET waiting = $2, retrying = $3, succeeded = $4, failed = $5, fail_seq = $6, watermark = $7,
	updated_at = $8, failing_since = $9, failed_by = $10
WHERE subscription_id = $1`,
			sub, int64(s.Waiting), int64(s.Retrying), int64(s.Succeeded), int64(s.Failed),
			int64(s.FailSeq), int64(s.Watermark), now, nullTime(s.FailingSince), failedBy)
		if s.SucceededNow+s.FailedNow > 0 {
			queueOutcomes(b, sub, now, s.SucceededNow, s.FailedNow)
			s.SucceededNow, s.FailedNow = 0, 0
		}
	}
}

// readStats reads sub's counters, locking the row when forUpdate (the
// waiting events counted apart are then not in Waiting: statsCache.get
// folds them); store.ErrNotFound when sub has none.
func readStats(ctx context.Context, q pgx.Tx, sub uuid.UUID, forUpdate bool) (stats, error) {
	sql := `SELECT waiting, retrying, succeeded, failed, fail_seq, watermark, updated_at, failing_since, failed_by
FROM sub_stats WHERE subscription_id = $1 FOR UPDATE`
	if !forUpdate {
		sql = `SELECT s.waiting + coalesce(i.waiting, 0), s.retrying, s.succeeded, s.failed, s.fail_seq, s.watermark,
	greatest(s.updated_at, i.added_at), s.failing_since, s.failed_by
FROM sub_stats s LEFT JOIN LATERAL (SELECT sum(waiting)::bigint AS waiting, max(added_at) AS added_at
	FROM intake_counts WHERE subscription_id = s.subscription_id) i ON true
WHERE s.subscription_id = $1`
	}
	var (
		s                             stats
		waiting, retrying, succ, fail int64
		failSeq, watermark            int64
		updatedAt, failingSince       *time.Time
		failedBy                      []int64
	)
	err := q.QueryRow(ctx, sql, sub).Scan(&waiting, &retrying, &succ, &fail, &failSeq, &watermark, &updatedAt, &failingSince, &failedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, store.ErrNotFound
	}
	if err != nil {
		return s, err
	}
	s.Waiting, s.Retrying, s.Succeeded, s.Failed = uint64(waiting), uint64(retrying), uint64(succ), uint64(fail)
	s.FailSeq, s.Watermark = uint64(failSeq), uint64(watermark)
	s.UpdatedAt, s.FailingSince = derefTime(updatedAt), derefTime(failingSince)
	for i := 0; i < len(failedBy) && i < int(store.NumReasons); i++ {
		s.FailedBy[i] = uint64(failedBy[i])
	}
	return s, nil
}

// nullTime is t for a nullable timestamptz column: NULL when zero.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// derefTime is a nullable column's time, zero when NULL.
func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
