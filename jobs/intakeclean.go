package jobs

import (
	"context"
	"time"

	"hookd/store"
)

// IntakeIDsTask forgets the senders' event ids recorded more than
// retention ago (the events' retention: a retry within it is recognised),
// in transactions of at most batch ids.
func IntakeIDsTask(db store.Store, retention time.Duration, batch int) Task {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	return Task{Name: "intake ids", Run: func(ctx context.Context) (int, error) {
		cutoff := db.Now().Add(-retention)
		return batches(ctx, batch, func() (int, error) { return db.PurgeIntakeIDs(cutoff, batch) })
	}}
}

// IdempotencyKeysTask forgets the intake answers kept under an
// Idempotency-Key for longer than store.IdempotencyKeyTTL, in transactions
// of at most batch keys.
func IdempotencyKeysTask(db store.Store, batch int) Task {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	return Task{Name: "idempotency keys", Run: func(ctx context.Context) (int, error) {
		cutoff := db.Now().Add(-store.IdempotencyKeyTTL)
		return batches(ctx, batch, func() (int, error) { return db.PurgeIdempotencyKeys(cutoff, batch) })
	}}
}
