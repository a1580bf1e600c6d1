package store

import (
	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// SubscriptionByID returns the subscription id whatever its customer, for
// the dispatcher; ErrNotFound when it does not exist or was deleted.
func (db *DB) SubscriptionByID(id uuid.UUID) (Subscription, error) {
	var s Subscription
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bucketSubscriptions), id[:], &s)
	})
	return s, err
}
