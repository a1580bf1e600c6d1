package bolt

import (
	"bytes"
	"crypto/sha256"
	"hookd/store"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// intakeIDKey is the key of a sender's id: <customer><id>, or
// <customer><scope><id> for a scoped one.
func intakeIDKey(customer, scope, id uuid.UUID) []byte {
	if scope == (uuid.UUID{}) {
		return join(customer[:], id[:])
	}
	return join(customer[:], scope[:], id[:])
}

func intakeKeyKey(customer uuid.UUID, key string) []byte {
	h := sha256.Sum256([]byte(key))
	return join(customer[:], h[:])
}

// RecordIntake records an intake request in one transaction: the events
// (less the duplicates) for their deliveries as AddEvents does, the
// senders' ids of the new events, and the answer under the request's key.
// Concurrent calls share commits.
func (db *DB) RecordIntake(in store.Intake) (store.IntakeResult, error) {
	var res store.IntakeResult
	err := db.group.do(func(tx *bbolt.Tx) error {
		res = store.IntakeResult{}
		now := db.now().UTC()
		keys := tx.Bucket(bucketIntakeKeys)
		var kk []byte
		if in.Key != "" {
			kk = intakeKeyKey(in.CustomerID, in.Key)
			if v := keys.Get(kk); len(v) >= 8+sha256.Size {
				at := decodeNanos(v)
				if now.Sub(at) < store.IdempotencyKeyTTL {
					if !bytes.Equal(v[8:8+sha256.Size], in.RequestHash[:]) {
						return store.ErrKeyReused
					}
					res.Replay = bytes.Clone(v[8+sha256.Size:])
					return nil
				}
				// Expired, not yet purged: the key starts afresh.
				if err := tx.Bucket(bucketIntakeKeysByTime).Delete(join(timeKey(at), kk)); err != nil {
					return err
				}
			}
		}
		ids, byTime := tx.Bucket(bucketIntakeIDs), tx.Bucket(bucketIntakeIDsByTime)
		var dup []bool
		for i, ne := range in.Events {
			if ne.ID == (uuid.UUID{}) {
				continue
			}
			k := intakeIDKey(in.CustomerID, in.Scope, ne.ID)
			if ids.Get(k) != nil {
				if dup == nil {
					dup = make([]bool, len(in.Events))
				}
				dup[i] = true
				res.Duplicates = append(res.Duplicates, i)
				continue
			}
			if err := ids.Put(k, timeKey(now)); err != nil {
				return err
			}
			if err := byTime.Put(join(timeKey(now), k), nil); err != nil {
				return err
			}
		}
		var err error
		res.Added, err = addEvents(db.refs(tx), now, in.Events, in.Deliveries, dup)
		if err != nil || in.Key == "" {
			return err
		}
		body, err := in.Answer(res)
		if err != nil {
			return err
		}
		v := append(append(timeKey(now), in.RequestHash[:]...), body...)
		if err := keys.Put(kk, v); err != nil {
			return err
		}
		return tx.Bucket(bucketIntakeKeysByTime).Put(join(timeKey(now), kk), nil)
	})
	return res, err
}

// PurgeIntakeIDs forgets up to limit senders' event ids recorded before
// cutoff and returns how many.
func (db *DB) PurgeIntakeIDs(cutoff time.Time, limit int) (int, error) {
	return db.purgeByTime(bucketIntakeIDsByTime, bucketIntakeIDs, cutoff, limit)
}

// PurgeIdempotencyKeys forgets up to limit intake answers kept under keys
// before cutoff and returns how many.
func (db *DB) PurgeIdempotencyKeys(cutoff time.Time, limit int) (int, error) {
	return db.purgeByTime(bucketIntakeKeysByTime, bucketIntakeKeys, cutoff, limit)
}

// purgeByTime deletes up to limit entries of a time index (<time 8><key>)
// older than cutoff, and the records their keys name in records.
func (db *DB) purgeByTime(index, records []byte, cutoff time.Time, limit int) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		n = 0
		idx, recs := tx.Bucket(index), tx.Bucket(records)
		end := timeKey(cutoff)
		var found [][]byte
		c := idx.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) < 0 && len(found) < limit; k, _ = c.Next() {
			found = append(found, bytes.Clone(k))
		}
		for _, k := range found {
			if err := idx.Delete(k); err != nil {
				return err
			}
			// The record may be newer (an expired key used again): keep it then.
			if v := recs.Get(k[8:]); len(v) >= 8 && bytes.Equal(v[:8], k[:8]) {
				if err := recs.Delete(k[8:]); err != nil {
					return err
				}
			}
			n++
		}
		return nil
	})
	return n, err
}
