package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// The janitor's upkeep. Each call deletes a bounded batch in one short
// transaction: the rows are picked by an index in a subquery with a LIMIT
// and deleted by their ctid, so that no statement walks more than its
// batch. Rows that a delivery holds locked are skipped (SKIP LOCKED) and
// left for the next batch, so that the janitor never makes a delivery
// wait.

// PurgeExpiredEvents deletes up to limit events created before cutoff,
// oldest first, and returns how many it deleted. The counters of their
// subscriptions lose them as the bolt backend's do. Like the bolt
// backend, it leaves the events of deleted subscriptions (those with a
// tombstone, and so without counters) to PurgeDeleted.
func (db *DB) PurgeExpiredEvents(cutoff time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	n := 0
	cutoff = ceilMicro(cutoff)
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		n = 0
		// The batch, by the creation index, unlocked: the counters are
		// locked before the events, as every writer of both locks them.
		rows, err := tx.Query(ctx, `
SELECT subscription_id, seq FROM events e WHERE created_at < $1
AND NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.subscription_id = e.subscription_id)
ORDER BY created_at LIMIT $2`, cutoff, limit)
		if err != nil {
			return err
		}
		var (
			subs, keySubs []uuid.UUID
			keySeqs       []int64
			sub           uuid.UUID
			seq           int64
			seen          = map[uuid.UUID]bool{}
		)
		_, err = pgx.ForEachRow(rows, []any{&sub, &seq}, func() error {
			keySubs, keySeqs = append(keySubs, sub), append(keySeqs, seq)
			if !seen[sub] {
				seen[sub] = true
				subs = append(subs, sub)
			}
			return nil
		})
		if err != nil || len(subs) == 0 {
			return err
		}
		// Lock the counters in id order, as every writer of several
		// subscriptions' counters does; those without counters (deleted
		// meanwhile) are left out.
		slices.SortFunc(subs, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
		rows, err = tx.Query(ctx, `SELECT subscription_id FROM sub_stats WHERE subscription_id = ANY($1)
ORDER BY subscription_id FOR UPDATE`, subs)
		if err != nil {
			return err
		}
		if subs, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil || len(subs) == 0 {
			return err
		}
		stats := newStatsCache(tx)
		for _, sub := range subs {
			if _, err := stats.get(ctx, sub); err != nil {
				return err
			}
		}
		// Delete the batch's events by key, those of the locked counters
		// that are still expired and that no delivery holds.
		rows, err = tx.Query(ctx, `
DELETE FROM events WHERE ctid IN (
	SELECT e.ctid FROM unnest($2::uuid[], $3::bigint[]) AS k(sub, seq)
	JOIN events e ON e.subscription_id = k.sub AND e.seq = k.seq
	WHERE e.created_at < $1 AND e.subscription_id = ANY($4)
	FOR UPDATE OF e SKIP LOCKED
) RETURNING subscription_id, state, reason`, cutoff, keySubs, keySeqs, subs)
		if err != nil {
			return err
		}
		var state, reason int16
		_, err = pgx.ForEachRow(rows, []any{&sub, &state, &reason}, func() error {
			st, err := stats.get(ctx, sub)
			if err != nil {
				return err
			}
			st.Count(store.State(state), 0)
			if store.State(state) == store.Failure {
				st.Unfailed(store.ReasonCode(reason))
			}
			n++
			return nil
		})
		if err != nil {
			return err
		}
		return stats.flush(ctx, db.Now().UTC())
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Tombstones returns the ids of deleted subscriptions whose data is still
// being purged.
func (db *DB) Tombstones() ([]uuid.UUID, error) {
	var out []uuid.UUID
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT subscription_id FROM tombstones ORDER BY subscription_id`)
		if err != nil {
			return err
		}
		var id uuid.UUID
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
			out = append(out, id)
			return nil
		})
		return err
	})
	return out, err
}

// PurgeDeleted deletes up to limit rows of the deleted subscription sub:
// its events first, then its export ranges, its timeline and its counters
// (when any are left). It returns the number of events deleted and the
// number of rows; at 0 rows the subscription's data is gone, and
// DropTombstone removes the tombstone once its export jobs are removed
// too. The bolt backend counts index entries among its keys; here the
// indexes go with their rows uncounted.
func (db *DB) PurgeDeleted(sub uuid.UUID, limit int) (events, keys int, err error) {
	if limit <= 0 {
		return 0, 0, nil
	}
	err = db.tx(func(ctx context.Context, tx pgx.Tx) error {
		events, keys = 0, 0
		var stone bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tombstones WHERE subscription_id = $1)`, sub).Scan(&stone); err != nil || !stone {
			return err
		}
		for _, del := range []struct {
			sql    string
			events bool
		}{
			{`DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE subscription_id = $1 LIMIT $2)`, true},
			{`DELETE FROM export_ranges WHERE ctid IN (SELECT ctid FROM export_ranges WHERE subscription_id = $1 LIMIT $2)`, false},
			{`DELETE FROM timeline WHERE ctid IN (SELECT ctid FROM timeline WHERE subscription_id = $1 LIMIT $2)`, false},
			{`DELETE FROM intake_counts WHERE ctid IN (SELECT ctid FROM intake_counts WHERE subscription_id = $1 LIMIT $2)`, false},
			{`DELETE FROM sub_stats WHERE ctid IN (SELECT ctid FROM sub_stats WHERE subscription_id = $1 LIMIT $2)`, false},
		} {
			if keys >= limit {
				break
			}
			tag, err := tx.Exec(ctx, del.sql, sub, limit-keys)
			if err != nil {
				return err
			}
			if del.events {
				events = int(tag.RowsAffected())
			}
			keys += int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return events, keys, nil
}

// DropTombstone removes the tombstone of the deleted subscription sub once
// nothing of it is left: its events and export ranges (removed by
// PurgeDeleted) and its export jobs (removed by DeleteExports after their
// files). It reports whether the tombstone is gone; while something is
// left it keeps the tombstone and reports false.
func (db *DB) DropTombstone(sub uuid.UUID) (bool, error) {
	dropped := false
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var stone, left bool
		err := tx.QueryRow(ctx, `SELECT
	EXISTS (SELECT 1 FROM tombstones WHERE subscription_id = $1 FOR UPDATE),
	EXISTS (SELECT 1 FROM events WHERE subscription_id = $1)
	OR EXISTS (SELECT 1 FROM export_ranges WHERE subscription_id = $1)
	OR EXISTS (SELECT 1 FROM exports WHERE subscription_id = $1)`, sub).Scan(&stone, &left)
		if err != nil {
			return err
		}
		switch {
		case !stone:
			dropped = true
		case !left:
			_, err = tx.Exec(ctx, `DELETE FROM tombstones WHERE subscription_id = $1`, sub)
			dropped = err == nil
		default:
			dropped = false
		}
		return err
	})
	if err != nil {
		return false, err
	}
	return dropped, nil
}

// DeletedSubscriptionExports returns up to limit export jobs of the deleted
// subscription sub (one with a tombstone), in any state, oldest first. The
// janitor deletes their files, then DeleteExports removes the records.
func (db *DB) DeletedSubscriptionExports(sub uuid.UUID, limit int) ([]store.ExportJob, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.ExportJob
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = queryExports(ctx, tx, `SELECT job FROM exports
WHERE subscription_id = $1 AND EXISTS (SELECT 1 FROM tombstones WHERE subscription_id = $1)
ORDER BY created_at, id LIMIT $2`, sub, limit)
		return err
	})
	return out, err
}

// ExpiredExports returns up to limit export jobs created before cutoff that
// have ended, by subscription and then oldest first as the bolt backend
// returns them. The janitor deletes their files, then DeleteExports
// removes the records.
func (db *DB) ExpiredExports(cutoff time.Time, limit int) ([]store.ExportJob, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.ExportJob
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = queryExports(ctx, tx, `SELECT job FROM exports
WHERE created_at < $1 AND state NOT IN `+activeStates+`
ORDER BY subscription_id, created_at, id LIMIT $2`, ceilMicro(cutoff), limit)
		return err
	})
	return out, err
}

// DeleteExports removes the records of the jobs ids with their export
// range, whatever their state, and returns how many it removed; unknown
// ids are skipped. The jobs' files are the caller's to delete, before this
// call.
func (db *DB) DeleteExports(ids []uuid.UUID) (int, error) {
	n := 0
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `
WITH gone AS (DELETE FROM exports WHERE id = ANY($1) RETURNING id, subscription_id),
ranges AS (DELETE FROM export_ranges r USING gone WHERE r.subscription_id = gone.subscription_id AND r.job_id = gone.id)
SELECT count(*) FROM gone`, ids).Scan(&n)
	})
	if err != nil {
		return 0, err
	}
	return n, err
}

// PurgeIntakeIDs forgets up to limit senders' event ids recorded before
// cutoff and returns how many.
func (db *DB) PurgeIntakeIDs(cutoff time.Time, limit int) (int, error) {
	return db.purgeOlder(`DELETE FROM intake_ids WHERE ctid IN (
	SELECT ctid FROM intake_ids WHERE recorded_at < $1 ORDER BY recorded_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff, limit)
}

// PurgeIdempotencyKeys forgets up to limit intake answers kept under keys
// before cutoff and returns how many.
func (db *DB) PurgeIdempotencyKeys(cutoff time.Time, limit int) (int, error) {
	return db.purgeOlder(`DELETE FROM intake_keys WHERE ctid IN (
	SELECT ctid FROM intake_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff, limit)
}

// purgeOlder runs a delete of up to $2 rows older than $1 and returns how
// many it deleted.
func (db *DB) purgeOlder(sql string, cutoff time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	n := 0
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, ceilMicro(cutoff), limit)
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PurgeTimeline deletes up to limit timeline records of hours that ended
// at or before cutoff, and of minutes older than store.MinuteWindow (those
// of subscriptions without a recent outcome), and returns how many it
// deleted.
func (db *DB) PurgeTimeline(cutoff time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	n := 0
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		n = 0
		for _, t := range []struct {
			span  string
			start time.Time // the first span kept
		}{
			{spanHour, cutoff.Truncate(store.TimelineHour)},
			{spanMinute, db.Now().Add(-store.MinuteWindow).Truncate(store.TimelineMinute)},
		} {
			if n >= limit {
				break
			}
			// The span is a literal: the driver has no text encoding for "char".
			tag, err := tx.Exec(ctx, `DELETE FROM timeline WHERE ctid IN (
	SELECT ctid FROM timeline WHERE span = '`+t.span+`' AND start < $1 ORDER BY start LIMIT $2 FOR UPDATE SKIP LOCKED)`,
				ceilMicro(t.start), limit-n)
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
