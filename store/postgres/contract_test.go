package postgres

import (
	"context"
	"testing"
	"time"

	"hookd/store"
	"hookd/store/pgtest"
	"hookd/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openTest opens a store on a fresh database of the package's throw-away
// cluster, on the clock now. The database is a copy of one migrated once.
func openTest(t *testing.T, now func() time.Time) *DB {
	t.Helper()
	return openTestWith(t, Options{Now: now})
}

// openTestWith is openTest with the store's options o.
func openTestWith(t *testing.T, o Options) *DB {
	t.Helper()
	dsn := pgtest.DatabaseFrom(t, "migrated", func(ctx context.Context, dsn string) error {
		db, err := Open(ctx, dsn, Options{})
		if err != nil {
			return err
		}
		return db.Close()
	})
	db, err := Open(context.Background(), dsn, o)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestContract runs the store's behaviour suite against PostgreSQL, each
// test on a fresh database.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store { return openTest(t, now) })
}
