package bolt

import (
	"fmt"
	"hookd/store"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// migrationTest is the test of one migration: setup writes data as the
// file stood at the version before the migration, check reads what the
// store holds after Open migrated the file.
type migrationTest struct {
	name  string
	setup func(tx *bbolt.Tx) error
	check func(t *testing.T, db *DB)
}

// migrationTests has one entry per migration, in the order of migrations.
// migrationCustomer is a customer written before a migration.
var migrationCustomer = uuid.MustParse("8a4b0f3e-55a3-4a53-9d42-3c1f6e0b2a71")

var migrationTests = []migrationTest{
	{
		name:  "create buckets",
		setup: func(*bbolt.Tx) error { return nil }, // version 0 is a file without buckets
		check: func(t *testing.T, db *DB) {
			err := db.bolt.View(func(tx *bbolt.Tx) error {
				for _, name := range [][]byte{
					bucketCustomers, bucketClients, bucketClientsByCustomer, bucketTokens,
					bucketTokenExpiry, bucketKeys, bucketSubscriptions, bucketSubsByCustomer,
					bucketSubTitles, bucketSubStats, bucketEvents, bucketDue, bucketFailures,
					bucketExports, bucketExportsBySub, bucketExportRanges, bucketTombstones,
				} {
					b := tx.Bucket(name)
					if b == nil {
						t.Errorf("got no bucket %s, want it created", name)
						continue
					}
					if k, _ := b.Cursor().First(); k != nil {
						t.Errorf("bucket %s: got key %x, want an empty bucket", name, k)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		},
	},
	{
		name:  "index active exports",
		setup: v1Exports.put,
		check: func(t *testing.T, db *DB) {
			active, err := db.ActiveExports()
			if err != nil {
				t.Fatal(err)
			}
			var got []uuid.UUID
			for _, j := range active {
				got = append(got, j.ID)
			}
			// Oldest first, whatever the order of the ids.
			if want := []uuid.UUID{v1Exports.writing, v1Exports.processing}; !slices.Equal(got, want) {
				t.Errorf("got active jobs %v, want %v (writing, then processing)", got, want)
			}
			keys := 0
			err = db.bolt.View(func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketExportsActive).ForEach(func(k, v []byte) error {
					keys++
					if len(k) != 24 || len(v) != 0 {
						t.Errorf("got index entry %x -> %x, want a 24-byte key and no value", k, v)
					}
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if keys != 2 {
				t.Errorf("got %d entries in exportsActive, want 2", keys)
			}
			// The jobs themselves are left as they were.
			for id, want := range v1Exports.states {
				j, err := db.ExportByID(id)
				if err != nil || j.State != want {
					t.Errorf("job %s: got state %q (err %v), want %q", id, j.State, err, want)
				}
			}
		},
	},
	{
		name: "intake indexes",
		// A version 2 file with a customer's client: the indexes of the
		// intake's ids and keys do not exist yet.
		setup: func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketCustomers).Put(migrationCustomer[:], []byte("{}"))
		},
		check: func(t *testing.T, db *DB) {
			err := db.bolt.View(func(tx *bbolt.Tx) error {
				for _, name := range [][]byte{bucketIntakeIDs, bucketIntakeIDsByTime, bucketIntakeKeys, bucketIntakeKeysByTime} {
					if tx.Bucket(name) == nil {
						t.Errorf("got no bucket %s, want it created", name)
					}
				}
				if tx.Bucket(bucketCustomers).Get(migrationCustomer[:]) == nil {
					t.Error("the customer written before the migration is gone")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// The indexes work: a sender's id is recorded once.
			in := store.Intake{CustomerID: migrationCustomer, Events: []store.NewEvent{{ID: uuid.New(), Type: "entityCreated", Txn: "t", Payload: []byte("{}")}}}
			if _, err := db.RecordIntake(in); err != nil {
				t.Fatal(err)
			}
			res, err := db.RecordIntake(in)
			if err != nil || len(res.Duplicates) != 1 {
				t.Errorf("the same id again: got duplicates %v, %v; want the event", res.Duplicates, err)
			}
		},
	},
	{
		name: "timeline",
		// A version 3 file with a subscription's counters: the timeline
		// bucket does not exist yet.
		setup: func(tx *bbolt.Tx) error {
			return putStats(tx, migrationCustomer, Stats{Counters: store.Counters{Succeeded: 4, Failed: 2}})
		},
		check: func(t *testing.T, db *DB) {
			err := db.bolt.View(func(tx *bbolt.Tx) error {
				for _, name := range [][]byte{bucketTimeline, bucketTimelineMinutes} {
					b := tx.Bucket(name)
					if b == nil {
						t.Fatalf("got no bucket %s, want it created", name)
					}
					if k, _ := b.Cursor().First(); k != nil {
						t.Errorf("bucket %s: got key %x, want it empty (no history before the upgrade)", name, k)
					}
				}
				if st, err := getStats(tx, migrationCustomer); err != nil || st.Succeeded != 4 || st.Failed != 2 {
					t.Errorf("got counters %+v (err %v), want them kept", st, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		},
	},
	{
		name: "attempt details",
		// A version 4 file with an event (record version 3): the bucket of attempt details
		// does not exist yet, and the event has none.
		setup: func(tx *bbolt.Tx) error {
			e := store.Event{SubscriptionID: migrationCustomer, Seq: 7, ID: uuid.New(), Type: "entityCreated", Payload: []byte(`{}`),
				CreatedAt: time.Unix(1700000000, 0), UpdatedAt: time.Unix(1700000000, 0), State: store.Success, Attempts: 1}
			return tx.Bucket(bucketEvents).Put(eventKey(e.SubscriptionID, e.Seq), appendEventV3(nil, &e))
		},
		check: func(t *testing.T, db *DB) {
			err := db.bolt.View(func(tx *bbolt.Tx) error {
				b := tx.Bucket(bucketAttemptDetails)
				if b == nil {
					t.Fatalf("got no bucket %s, want it created", bucketAttemptDetails)
				}
				if k, _ := b.Cursor().First(); k != nil {
					t.Errorf("got key %x, want the bucket empty (no details before the upgrade)", k)
				}
				ds, err := getAttemptDetails(tx, migrationCustomer, 7)
				if err != nil || len(ds) != 0 {
					t.Errorf("got details %v, %v for the old event; want none", ds, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		},
	},
	{
		name: "string table",
		// A version 5 file with an event record of record version 3: the
		// string table does not exist yet; the record reads as it was and
		// is written in record version 4 when written again.
		setup: func(tx *bbolt.Tx) error {
			e := migrationEvent()
			return tx.Bucket(bucketEvents).Put(eventKey(e.SubscriptionID, e.Seq), appendEventV3(nil, &e))
		},
		check: func(t *testing.T, db *DB) {
			want := migrationEvent()
			err := db.bolt.Update(func(tx *bbolt.Tx) error {
				for _, name := range [][]byte{bucketStrings, bucketStringIDs} {
					if tx.Bucket(name) == nil {
						t.Fatalf("got no bucket %s, want it created", name)
					}
				}
				var got store.Event
				if err := getEvent(db.refs(tx), want.SubscriptionID, want.Seq, &got); err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("the version 3 record: got %+v (err %v), want %+v", got, err, want)
				}
				if _, err := putEvent(db.refs(tx), &got, nil); err != nil {
					return err
				}
				if v := tx.Bucket(bucketEvents).Get(eventKey(want.SubscriptionID, want.Seq)); v[0] != codecVersion {
					t.Errorf("rewritten record: got version %d, want %d", v[0], codecVersion)
				}
				if err := getEvent(db.refs(tx), want.SubscriptionID, want.Seq, &got); err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("the rewritten record: got %+v (err %v), want %+v", got, err, want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		},
	},
}

// v1Exports are export jobs in every state as a version 1 file holds them:
// JSON records and the exportsBySub index, without exportsActive.
var v1Exports = v1ExportFile{
	customer:   uuid.MustParse("0191a0b0-0000-7000-8000-000000000001"),
	sub:        uuid.MustParse("0191a0b0-0000-7000-8000-000000000002"),
	processing: uuid.MustParse("0191a0b0-0000-7000-8000-00000000000a"), // the smaller id, created later
	writing:    uuid.MustParse("0191a0b0-0000-7000-8000-00000000000f"),
	states: map[uuid.UUID]store.ExportState{
		uuid.MustParse("0191a0b0-0000-7000-8000-00000000000a"): store.ExportProcessing,
		uuid.MustParse("0191a0b0-0000-7000-8000-00000000000f"): store.ExportWriting,
		uuid.MustParse("0191a0b0-0000-7000-8000-00000000000b"): store.ExportCompleted,
		uuid.MustParse("0191a0b0-0000-7000-8000-00000000000c"): store.ExportCanceled,
		uuid.MustParse("0191a0b0-0000-7000-8000-00000000000d"): store.ExportFailed,
	},
}

type v1ExportFile struct {
	customer, sub, processing, writing uuid.UUID
	states                             map[uuid.UUID]store.ExportState
}

// put writes the jobs as version 1 stored them.
func (v v1ExportFile) put(tx *bbolt.Tx) error {
	// Creation times: the writing job is the oldest active one.
	created := map[uuid.UUID]time.Time{
		v.writing:    time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC),
		v.processing: time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC),
	}
	base := time.Date(2025, 2, 27, 9, 0, 0, 0, time.UTC)
	i := 0
	for id := range v.states {
		if _, ok := created[id]; !ok {
			created[id] = base.Add(time.Duration(i) * time.Hour)
			i++
		}
	}
	for id, state := range v.states {
		at := created[id].Format(time.RFC3339Nano)
		record := fmt.Sprintf(`{"id":%q,"customerId":%q,"subscriptionId":%q,"state":%q,"createdAt":%q,"updatedAt":%q,"fromSeq":0,"toSeq":3,"eventCount":0}`,
			id, v.customer, v.sub, state, at, at)
		if err := tx.Bucket(bucketExports).Put(id[:], []byte(record)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketExportsBySub).Put(join(v.sub[:], timeKey(created[id]), id[:]), nil); err != nil {
			return err
		}
	}
	return nil
}

// TestMigrations runs each migration on a file at the version before it,
// holding that version's data, through Open, and checks the result. A
// migration without a test fails it.
func TestMigrations(t *testing.T) {
	if len(migrationTests) != len(migrations) {
		t.Fatalf("got %d migration tests for %d migrations, want one test per migration in migrationTests", len(migrationTests), len(migrations))
	}
	for i, mt := range migrationTests {
		t.Run(fmt.Sprintf("to%d %s", i+1, mt.name), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			b, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = b.Update(func(tx *bbolt.Tx) error {
				meta, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				if err := meta.Put(keyVersion, u64(uint64(i))); err != nil {
					return err
				}
				for j := 0; j < i; j++ {
					if err := migrations[j](tx); err != nil {
						return err
					}
				}
				return mt.setup(tx)
			})
			b.Close()
			if err != nil {
				t.Fatalf("write a version %d file: %v", i, err)
			}
			db, err := Open(dir, Options{NoSync: true})
			if err != nil {
				t.Fatalf("open at version %d: %v", i, err)
			}
			mt.check(t, db)
			if err := db.Check(); err != nil {
				t.Errorf("consistency check: %v", err)
			}
			db.Close()
			if got := fileVersion(t, path); got != SchemaVersion {
				t.Errorf("got version %d, want %d", got, SchemaVersion)
			}
		})
	}
}

// migrationEvent is a delivered event as a version 4 file holds it, in
// record version 3.
func migrationEvent() store.Event {
	e := codecSample()
	e.SubscriptionID, e.Seq = migrationCustomer, 7
	e.ID = store.EventID(7, [10]byte{1, 2, 3})
	e.Jti, e.Txn = uuid.MustParse("4f1c2a9e-7b3d-4e8a-9c21-5d6e7f809a1b"), "5b1f3a52-6d2c-4f8e-9a57-3c1d2e4f6a7b"
	e.State, e.DueAt, e.Reason = store.Success, time.Time{}, store.ReasonNone
	e.JWS = "a.b.c"
	return e
}
