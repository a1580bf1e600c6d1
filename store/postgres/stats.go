package postgres

import (
	"context"
	"errors"
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
type statsCache struct {
	tx pgx.Tx
	m  map[uuid.UUID]*stats
}

func newStatsCache(tx pgx.Tx) *statsCache { return &statsCache{tx: tx, m: map[uuid.UUID]*stats{}} }

// get returns sub's counters; store.ErrNotFound when sub has none (it
// was deleted), as in the bolt backend.
func (c *statsCache) get(ctx context.Context, sub uuid.UUID) (*stats, error) {
	if s, ok := c.m[sub]; ok {
		return s, nil
	}
	s, err := readStats(ctx, c.tx, sub, true)
	if err != nil {
		return nil, err
	}
	c.m[sub] = &s
	return &s, nil
}

// flush writes the counters read by get and adds the outcomes to the
// timeline, all in one round trip.
func (c *statsCache) flush(ctx context.Context, now time.Time) error {
	var b pgx.Batch
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
			queueOutcomes(&b, sub, now, s.SucceededNow, s.FailedNow)
			s.SucceededNow, s.FailedNow = 0, 0
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return c.tx.SendBatch(ctx, &b).Close()
}

// readStats reads sub's counters, locking the row when forUpdate;
// store.ErrNotFound when sub has none.
func readStats(ctx context.Context, q pgx.Tx, sub uuid.UUID, forUpdate bool) (stats, error) {
	sql := `SELECT waiting, retrying, succeeded, failed, fail_seq, watermark, updated_at, failing_since, failed_by
FROM sub_stats WHERE subscription_id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
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
