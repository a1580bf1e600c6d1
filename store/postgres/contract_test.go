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
// cluster, on the clock now.
func openTest(t *testing.T, now func() time.Time) *DB {
	t.Helper()
	db, err := Open(context.Background(), pgtest.Database(t), Options{Now: now})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestContract runs the store's behaviour suite against PostgreSQL, each
// test on a fresh database.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store { return asStore(openTest(t, now)) })
}
