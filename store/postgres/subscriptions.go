package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"hookd/store"
)

// subColumns are the subscriptions columns scanSub reads, in its order.
const subColumns = `id, customer_id, title, endpoint, events, enabled, filter, signing_alg,
	created_at, updated_at, disabled_at, disabled_reason`

// subLockSpace is the first key of the advisory locks that serialize a
// customer's subscription creations (the second is derived from the
// customer id), so that two creations at once cannot both pass the limit.
const subLockSpace = 0x73756273 // "subs"

// CreateSubscription stores s. A duplicate title is ErrConflict; a customer
// already holding limit subscriptions is ErrLimit.
func (db *DB) CreateSubscription(s store.Subscription, limit int) error {
	filter, err := encodeFilter(s.Filter)
	if err != nil {
		return err
	}
	err = db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, subLockSpace, customerLockKey(s.CustomerID)); err != nil {
			return err
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscriptions WHERE customer_id = $1 AND title = $2)`,
			s.CustomerID, s.Title).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return titleTaken(s.Title)
		}
		if limit > 0 {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE customer_id = $1`, s.CustomerID).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return store.ErrLimit
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO subscriptions (`+subColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			s.ID, s.CustomerID, s.Title, s.Endpoint, s.Events, s.Enabled, filter, s.SigningAlg,
			s.CreatedAt, s.UpdatedAt, nullTime(s.DisabledAt), s.DisabledReason)
		if isUnique(err) && constraint(err) == "subscriptions_pkey" {
			return &store.ConflictError{Reason: fmt.Sprintf("subscription %s already exists", s.ID)}
		}
		if isUnique(err) {
			return titleTaken(s.Title)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO sub_stats (subscription_id) VALUES ($1)
ON CONFLICT (subscription_id) DO UPDATE SET waiting = 0, retrying = 0, succeeded = 0, failed = 0, fail_seq = 0,
	watermark = 0, updated_at = NULL, failing_since = NULL, failed_by = '{}'`, s.ID)
		return err
	})
	if err == nil {
		db.subsVersion.Add(1)
	}
	return err
}

// Subscription returns the customer's subscription id; ErrNotFound when it
// does not exist or belongs to another customer.
func (db *DB) Subscription(customerID, id uuid.UUID) (store.Subscription, error) {
	var s store.Subscription
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		s, err = getSubscription(ctx, tx, customerID, id, false)
		return err
	})
	if err != nil {
		return store.Subscription{}, err
	}
	return s, nil
}

// getSubscription reads the customer's subscription id, locking its row
// when forUpdate.
func getSubscription(ctx context.Context, tx pgx.Tx, customerID, id uuid.UUID, forUpdate bool) (store.Subscription, error) {
	sql := `SELECT ` + subColumns + ` FROM subscriptions WHERE id = $1 AND customer_id = $2`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	rows, err := tx.Query(ctx, sql, id, customerID)
	if err != nil {
		return store.Subscription{}, err
	}
	return pgx.CollectExactlyOneRow(rows, scanSub)
}

// SubscriptionByID returns the subscription id whatever its customer, for
// the dispatcher; ErrNotFound when it does not exist or was deleted.
func (db *DB) SubscriptionByID(id uuid.UUID) (store.Subscription, error) {
	var s store.Subscription
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+subColumns+` FROM subscriptions WHERE id = $1`, id)
		if err != nil {
			return err
		}
		s, err = pgx.CollectExactlyOneRow(rows, scanSub)
		return err
	})
	if err != nil {
		return store.Subscription{}, err
	}
	return s, nil
}

// Subscriptions lists a customer's subscriptions, oldest first (creation
// time, then id, as the bolt backend's index orders them).
func (db *DB) Subscriptions(customerID uuid.UUID) ([]store.Subscription, error) {
	out := []store.Subscription{}
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+subColumns+` FROM subscriptions WHERE customer_id = $1 ORDER BY created_at, id`, customerID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanSub)
		return err
	})
	if err != nil {
		return []store.Subscription{}, err
	}
	return out, nil
}

// AllSubscriptions lists every subscription of every customer, in id
// order as the bolt backend does.
func (db *DB) AllSubscriptions() ([]store.Subscription, error) {
	var out []store.Subscription
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+subColumns+` FROM subscriptions ORDER BY id`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanSub)
		if len(out) == 0 {
			out = nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateSubscription applies change to the customer's subscription id and
// stores the result. It returns the subscription before and after. A title
// taken by another subscription is ErrConflict. When the change disables the
// subscription, the events still waiting for an attempt are failed by the
// caller through FailWaiting; when it enables it again, the reason it was
// disabled for and its run of failures (FailingSince) are cleared.
func (db *DB) UpdateSubscription(customerID, id uuid.UUID, change func(*store.Subscription) error) (before, after store.Subscription, err error) {
	err = db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		before, err = getSubscription(ctx, tx, customerID, id, true)
		if err != nil {
			return err
		}
		after = before
		after.Events = append([]string(nil), before.Events...)
		after.Filter = bytes.Clone(before.Filter)
		if err := change(&after); err != nil {
			return err
		}
		after.ID, after.CustomerID, after.CreatedAt = before.ID, before.CustomerID, before.CreatedAt
		after.UpdatedAt = db.Now().UTC()
		after.DisabledAt, after.DisabledReason = before.DisabledAt, before.DisabledReason
		switch {
		case before.Enabled && !after.Enabled:
			after.DisabledAt = after.UpdatedAt
		case !before.Enabled && after.Enabled:
			// A fresh start: the reason goes, and so does the run of
			// failures that auto-disable measures.
			after.DisabledAt, after.DisabledReason = time.Time{}, ""
			if _, err := tx.Exec(ctx, `UPDATE sub_stats SET failing_since = NULL WHERE subscription_id = $1`, id); err != nil {
				return err
			}
		}
		filter, err := encodeFilter(after.Filter)
		if err != nil {
			return err
		}
		if after.Title != before.Title {
			var taken bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscriptions WHERE customer_id = $1 AND title = $2)`,
				customerID, after.Title).Scan(&taken); err != nil {
				return err
			}
			if taken {
				return titleTaken(after.Title)
			}
		}
		_, err = tx.Exec(ctx, `UPDATE subscriptions SET title = $2, endpoint = $3, events = $4, enabled = $5, filter = $6,
	signing_alg = $7, updated_at = $8, disabled_at = $9, disabled_reason = $10 WHERE id = $1`,
			id, after.Title, after.Endpoint, after.Events, after.Enabled, filter, after.SigningAlg,
			after.UpdatedAt, nullTime(after.DisabledAt), after.DisabledReason)
		if isUnique(err) {
			// A title taken by a rename or creation at once.
			return titleTaken(after.Title)
		}
		return err
	})
	if err != nil {
		return store.Subscription{}, store.Subscription{}, err
	}
	db.subsVersion.Add(1)
	return before, after, nil
}

// FailingSince returns the start of subscription id's current run of
// failed attempts, zero when its last attempt succeeded (or none failed);
// ErrNotFound when the subscription does not exist.
func (db *DB) FailingSince(id uuid.UUID) (time.Time, error) {
	var t *time.Time
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT failing_since FROM sub_stats WHERE subscription_id = $1`, id).Scan(&t)
	})
	if err != nil {
		return time.Time{}, err
	}
	return derefTime(t), nil
}

// DisableSubscription disables subscription id for reason, unless it is
// disabled already or, when failingBefore is set, its current run of
// failed attempts did not start at or before failingBefore (a success may
// have ended it meanwhile). It reports whether it disabled it, and the
// subscription as stored. The caller then fails the waiting events
// through FailWaiting, as with any disable.
func (db *DB) DisableSubscription(id uuid.UUID, reason string, failingBefore time.Time) (store.Subscription, bool, error) {
	var s store.Subscription
	done := false
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		done = false
		rows, err := tx.Query(ctx, `SELECT `+subColumns+` FROM subscriptions WHERE id = $1 FOR UPDATE`, id)
		if err != nil {
			return err
		}
		s, err = pgx.CollectExactlyOneRow(rows, scanSub)
		if err != nil {
			return err
		}
		if !s.Enabled {
			return nil
		}
		if !failingBefore.IsZero() {
			// Locked, so that an attempt's success recorded at once
			// either ends the run before this reads it or waits.
			var since *time.Time
			if err := tx.QueryRow(ctx, `SELECT failing_since FROM sub_stats WHERE subscription_id = $1 FOR UPDATE`, id).Scan(&since); err != nil {
				return err
			}
			if since == nil || since.After(failingBefore) {
				return nil
			}
		}
		now := db.Now().UTC()
		s.Enabled, s.DisabledAt, s.DisabledReason, s.UpdatedAt = false, now, reason, now
		if _, err := tx.Exec(ctx, `UPDATE subscriptions SET enabled = false, disabled_at = $2, disabled_reason = $3, updated_at = $2
WHERE id = $1`, id, now, reason); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return store.Subscription{}, false, err
	}
	if done {
		db.subsVersion.Add(1)
	}
	return s, done, nil
}

// DeleteSubscription removes the customer's subscription id and its
// counters at once and leaves a tombstone; PurgeDeleted removes its events
// and export jobs in bounded batches afterwards.
func (db *DB) DeleteSubscription(customerID, id uuid.UUID) error {
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM subscriptions WHERE id = $1 AND customer_id = $2`, id, customerID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sub_stats WHERE subscription_id = $1`, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO tombstones (subscription_id, customer_id) VALUES ($1, $2)
ON CONFLICT (subscription_id) DO NOTHING`, id, customerID)
		return err
	})
	if err == nil {
		db.subsVersion.Add(1)
	}
	return err
}

func scanSub(row pgx.CollectableRow) (store.Subscription, error) {
	var (
		s          store.Subscription
		filter     *string
		disabledAt *time.Time
	)
	err := row.Scan(&s.ID, &s.CustomerID, &s.Title, &s.Endpoint, &s.Events, &s.Enabled, &filter, &s.SigningAlg,
		&s.CreatedAt, &s.UpdatedAt, &disabledAt, &s.DisabledReason)
	if err != nil {
		return store.Subscription{}, err
	}
	s.Filter = decodeFilter(filter)
	s.CreatedAt, s.UpdatedAt, s.DisabledAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC(), derefTime(disabledAt)
	return s, nil
}

// encodeFilter is a filter as the filter column keeps it: NULL when there
// is none, else its JSON compacted with nothing escaped, as the bolt
// backend's JSON record keeps it. Invalid JSON is refused.
func encodeFilter(f json.RawMessage) (*string, error) {
	if len(f) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, f); err != nil {
		return nil, fmt.Errorf("subscription filter: %w", err)
	}
	s := b.String()
	return &s, nil
}

func decodeFilter(f *string) json.RawMessage {
	if f == nil {
		return nil
	}
	return json.RawMessage(*f)
}

func titleTaken(title string) error {
	return &store.ConflictError{Reason: fmt.Sprintf("a subscription titled %q already exists", title)}
}

// constraint names the constraint a database error violated.
func constraint(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.ConstraintName
	}
	return ""
}

// customerLockKey is the second key of a customer's advisory lock.
func customerLockKey(customerID uuid.UUID) int32 {
	return int32(binary.BigEndian.Uint32(customerID[12:]))
}
