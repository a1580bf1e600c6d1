package bolt

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hookd/store"

	"go.etcd.io/bbolt"
)

// migrations are applied in order; migrations[i] brings a file from version
// i to version i+1. Append only. Each has an entry in migrationTests
// (migrations_test.go) that writes the previous version's data and checks
// what the migration made of it; TestMigrations fails without one.
var migrations = []func(*bbolt.Tx) error{
	migrateCreateBuckets,
	migrateExportsActive,
	migrateIntakeIndexes,
	migrateTimeline,
	migrateAttemptDetails,
	migrateStringTable,
}

// SchemaVersion is the version this build writes.
var SchemaVersion = uint64(len(migrations))

// migrate brings the file to SchemaVersion in the transaction of Open, and
// refuses a file of a newer version.
func migrate(tx *bbolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	var version uint64
	if v := meta.Get(keyVersion); v != nil {
		version = binary.BigEndian.Uint64(v)
	}
	if version > SchemaVersion {
		return fmt.Errorf("%w (file schema %d, this hookd knows %d); upgrade hookd", store.ErrNewerSchema, version, SchemaVersion)
	}
	for ; version < SchemaVersion; version++ {
		if err := migrations[version](tx); err != nil {
			return fmt.Errorf("migration %d: %w", version+1, err)
		}
	}
	return meta.Put(keyVersion, u64(version))
}

func migrateCreateBuckets(tx *bbolt.Tx) error {
	for _, name := range [][]byte{
		bucketCustomers, bucketClients, bucketClientsByCustomer, bucketTokens,
		bucketTokenExpiry, bucketKeys, bucketSubscriptions, bucketSubsByCustomer,
		bucketSubTitles, bucketSubStats, bucketEvents, bucketDue, bucketFailures,
		bucketExports, bucketExportsBySub, bucketExportRanges, bucketTombstones,
	} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

// migrateExportsActive creates the index of active export jobs and fills
// it from the jobs already stored.
func migrateExportsActive(tx *bbolt.Tx) error {
	active, err := tx.CreateBucketIfNotExists(bucketExportsActive)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketExports).ForEach(func(_, v []byte) error {
		var j store.ExportJob
		if err := json.Unmarshal(v, &j); err != nil {
			return err
		}
		if !j.State.Active() {
			return nil
		}
		return active.Put(activeKey(&j), nil)
	})
}

// migrateIntakeIndexes adds the buckets of the intake's senders' ids and
// idempotency keys.
func migrateIntakeIndexes(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketIntakeIDs, bucketIntakeIDsByTime, bucketIntakeKeys, bucketIntakeKeysByTime} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

// migrateTimeline adds the buckets of the subscriptions' outcomes per
// hour and per minute; they start empty, the time before the upgrade has
// no record.
func migrateTimeline(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketTimeline, bucketTimelineMinutes} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

// migrateAttemptDetails adds the bucket of the events' attempt details; the
// attempts made before the upgrade have none.
func migrateAttemptDetails(tx *bbolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists(bucketAttemptDetails)
	return err
}
