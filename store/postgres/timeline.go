package postgres

import (
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// The timeline's spans as stored in timeline.span.
const (
	spanHour   = "h"
	spanMinute = "m"
)

// queueOutcomes queues on b the statements that add outcomes reached at
// now to sub's hour and minute, and remove its minutes older than
// store.MinuteWindow.
func queueOutcomes(b *pgx.Batch, sub uuid.UUID, now time.Time, succeeded, failed uint64) {
	b.Queue(`
INSERT INTO timeline (subscription_id, span, start, succeeded, failed)
VALUES ($1, 'h', $2, $4, $5), ($1, 'm', $3, $4, $5)
ON CONFLICT (subscription_id, span, start) DO UPDATE SET
	succeeded = timeline.succeeded + EXCLUDED.succeeded, failed = timeline.failed + EXCLUDED.failed`,
		sub, now.Truncate(store.TimelineHour), now.Truncate(store.TimelineMinute), int64(succeeded), int64(failed))
	b.Queue(`DELETE FROM timeline WHERE subscription_id = $1 AND span = 'm' AND start < $2`,
		sub, now.Add(-store.MinuteWindow).Truncate(store.TimelineMinute))
}
