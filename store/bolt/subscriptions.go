package bolt

import (
	"bytes"
	"encoding/json"
	"hookd/store"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

func titleKey(customerID uuid.UUID, title string) []byte {
	return append(bytes.Clone(customerID[:]), title...)
}

func subIndexKey(s store.Subscription) []byte {
	return join(s.CustomerID[:], timeKey(s.CreatedAt), s.ID[:])
}

// CreateSubscription stores s. A duplicate title is ErrConflict; a customer
// already holding limit subscriptions is ErrLimit.
func (db *DB) CreateSubscription(s store.Subscription, limit int) error {
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		titles := tx.Bucket(bucketSubTitles)
		if titles.Get(titleKey(s.CustomerID, s.Title)) != nil {
			return conflict("a subscription titled %q already exists", s.Title)
		}
		if limit > 0 && countPrefix(tx.Bucket(bucketSubsByCustomer), s.CustomerID[:]) >= limit {
			return store.ErrLimit
		}
		if err := putJSON(tx.Bucket(bucketSubscriptions), s.ID[:], s); err != nil {
			return err
		}
		if err := titles.Put(titleKey(s.CustomerID, s.Title), s.ID[:]); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSubsByCustomer).Put(subIndexKey(s), nil); err != nil {
			return err
		}
		return putStats(tx, s.ID, Stats{})
	})
	if err == nil {
		db.subsChanged()
	}
	return err
}

// Subscription returns the customer's subscription id; ErrNotFound when it
// does not exist or belongs to another customer.
func (db *DB) Subscription(customerID, id uuid.UUID) (store.Subscription, error) {
	var s store.Subscription
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		var err error
		s, err = getSubscription(tx, customerID, id)
		return err
	})
	return s, err
}

func getSubscription(tx *bbolt.Tx, customerID, id uuid.UUID) (store.Subscription, error) {
	var s store.Subscription
	if err := getJSON(tx.Bucket(bucketSubscriptions), id[:], &s); err != nil {
		return store.Subscription{}, err
	}
	if s.CustomerID != customerID {
		return store.Subscription{}, store.ErrNotFound
	}
	return s, nil
}

// SubscriptionByID returns the subscription id whatever its customer, for
// the dispatcher; ErrNotFound when it does not exist or was deleted.
func (db *DB) SubscriptionByID(id uuid.UUID) (store.Subscription, error) {
	var s store.Subscription
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bucketSubscriptions), id[:], &s)
	})
	return s, err
}

// Subscriptions lists a customer's subscriptions, oldest first.
func (db *DB) Subscriptions(customerID uuid.UUID) ([]store.Subscription, error) {
	out := []store.Subscription{}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		var err error
		out, err = listSubscriptions(tx, customerID)
		return err
	})
	return out, err
}

func listSubscriptions(tx *bbolt.Tx, customerID uuid.UUID) ([]store.Subscription, error) {
	out := []store.Subscription{}
	subs := tx.Bucket(bucketSubscriptions)
	c := tx.Bucket(bucketSubsByCustomer).Cursor()
	for k, _ := c.Seek(customerID[:]); k != nil && bytes.HasPrefix(k, customerID[:]); k, _ = c.Next() {
		var s store.Subscription
		if err := getJSON(subs, k[24:], &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// AllSubscriptions lists every subscription of every customer.
func (db *DB) AllSubscriptions() ([]store.Subscription, error) {
	var out []store.Subscription
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSubscriptions).ForEach(func(_, v []byte) error {
			var s store.Subscription
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			out = append(out, s)
			return nil
		})
	})
	return out, err
}

// UpdateSubscription applies change to the customer's subscription id and
// stores the result. It returns the subscription before and after. A title
// taken by another subscription is ErrConflict. When the change disables the
// subscription, the events still waiting for an attempt are failed by the
// caller through FailWaiting.
func (db *DB) UpdateSubscription(customerID, id uuid.UUID, change func(*store.Subscription) error) (before, after store.Subscription, err error) {
	err = db.bolt.Update(func(tx *bbolt.Tx) error {
		var err error
		before, err = getSubscription(tx, customerID, id)
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
		after.UpdatedAt = db.now().UTC()
		after.DisabledAt, after.DisabledReason = before.DisabledAt, before.DisabledReason
		switch {
		case before.Enabled && !after.Enabled:
			after.DisabledAt = after.UpdatedAt
		case !before.Enabled && after.Enabled:
			// A fresh start: the reason goes, and so does the run of
			// failures that auto-disable measures.
			after.DisabledAt, after.DisabledReason = time.Time{}, ""
			if st, err := getStats(tx, id); err == nil {
				st.FailingSince = time.Time{}
				if err := putStats(tx, id, st); err != nil {
					return err
				}
			}
		}
		if after.Title != before.Title {
			titles := tx.Bucket(bucketSubTitles)
			if titles.Get(titleKey(customerID, after.Title)) != nil {
				return conflict("a subscription titled %q already exists", after.Title)
			}
			if err := titles.Delete(titleKey(customerID, before.Title)); err != nil {
				return err
			}
			if err := titles.Put(titleKey(customerID, after.Title), id[:]); err != nil {
				return err
			}
		}
		return putJSON(tx.Bucket(bucketSubscriptions), id[:], after)
	})
	if err == nil {
		db.subsChanged()
	}
	return before, after, err
}

// FailingSince returns the start of subscription id's current run of
// failed attempts, zero when its last attempt succeeded (or none failed).
func (db *DB) FailingSince(id uuid.UUID) (time.Time, error) {
	var t time.Time
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		st, err := getStats(tx, id)
		t = st.FailingSince
		return err
	})
	return t, err
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
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		done = false
		if err := getJSON(tx.Bucket(bucketSubscriptions), id[:], &s); err != nil {
			return err
		}
		if !s.Enabled {
			return nil
		}
		if !failingBefore.IsZero() {
			st, err := getStats(tx, id)
			if err != nil {
				return err
			}
			if st.FailingSince.IsZero() || st.FailingSince.After(failingBefore) {
				return nil
			}
		}
		now := db.now().UTC()
		s.Enabled, s.DisabledAt, s.DisabledReason, s.UpdatedAt = false, now, reason, now
		done = true
		return putJSON(tx.Bucket(bucketSubscriptions), id[:], s)
	})
	if done && err == nil {
		db.subsChanged()
	}
	return s, done && err == nil, err
}

// DeleteSubscription removes the customer's subscription id at once and
// leaves a tombstone; PurgeDeleted removes its events and export jobs in
// bounded batches afterwards.
func (db *DB) DeleteSubscription(customerID, id uuid.UUID) error {
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		s, err := getSubscription(tx, customerID, id)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketSubscriptions).Delete(id[:]); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSubTitles).Delete(titleKey(customerID, s.Title)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSubsByCustomer).Delete(subIndexKey(s)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSubStats).Delete(id[:]); err != nil {
			return err
		}
		return tx.Bucket(bucketTombstones).Put(id[:], customerID[:])
	})
	if err == nil {
		db.subsChanged()
	}
	return err
}

// SubscriptionsVersion changes whenever any subscription is created, changed
// or deleted, so that callers may cache derived data.
func (db *DB) SubscriptionsVersion() uint64 { return db.subsVersion.Load() }

func (db *DB) subsChanged() { db.subsVersion.Add(1) }

func countPrefix(b *bbolt.Bucket, prefix []byte) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	return n
}
