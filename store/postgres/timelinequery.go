package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// Timeline returns the customer's subscription sub's hours that saw an
// outcome, from the hour of from up to to, oldest first; hours without
// one are left out.
func (db *DB) Timeline(customerID, sub uuid.UUID, from, to time.Time) ([]store.Outcomes, error) {
	return db.timeline(spanHour, store.TimelineHour, customerID, sub, from, to)
}

// TimelineMinutes returns sub's minutes that saw an outcome, from the
// minute of from (no earlier than MinuteWindow before to) up to to,
// oldest first.
func (db *DB) TimelineMinutes(customerID, sub uuid.UUID, from, to time.Time) ([]store.Outcomes, error) {
	if start := to.Add(-store.MinuteWindow); from.Before(start) {
		from = start
	}
	return db.timeline(spanMinute, store.TimelineMinute, customerID, sub, from, to)
}

func (db *DB) timeline(span string, d time.Duration, customerID, sub uuid.UUID, from, to time.Time) ([]store.Outcomes, error) {
	var out []store.Outcomes
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		out = nil
		if _, err := customerSubscription(ctx, tx, customerID, sub); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT start, succeeded, failed FROM timeline
WHERE subscription_id = $1 AND span = '`+span+`' AND start >= $2 AND start <= $3 ORDER BY start`,
			sub, from.Truncate(d), to.Truncate(d))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var o store.Outcomes
			var succeeded, failed int64
			if err := rows.Scan(&o.Start, &succeeded, &failed); err != nil {
				return err
			}
			o.Start, o.Succeeded, o.Failed = o.Start.UTC(), uint64(succeeded), uint64(failed)
			out = append(out, o)
		}
		return rows.Err()
	})
	return out, err
}
