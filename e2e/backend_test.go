package e2e

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"hookd/store"
	"hookd/store/bolt"
	"hookd/store/pgtest"
	"hookd/store/postgres"
)

// storeEnv names the store the end-to-end tests run hookd on: unset for
// the embedded store under each test's data directory, "postgres" for a
// fresh database of a throw-away PostgreSQL cluster per data directory
// (`make test` runs the package both ways).
const storeEnv = "HOOKD_E2E_STORE"

// TestMain runs the tests; the PostgreSQL cluster, when a test needs one,
// starts at its first use and stops at the end.
func TestMain(m *testing.M) { pgtest.Main(m) }

// onPostgres reports whether the tests run hookd on PostgreSQL.
func onPostgres() bool { return os.Getenv(storeEnv) == "postgres" }

// storeDSNs maps a data directory to its database, so that a hookd
// started again on the same directory finds the same state.
var storeDSNs sync.Map

// storeFlags returns the flags that put the hookd of data directory dir on
// the tests' store: none for the embedded one, --store with the
// directory's database on PostgreSQL.
func storeFlags(t testing.TB, dir string) []string {
	t.Helper()
	if !onPostgres() {
		return nil
	}
	return []string{"--store", storeDSN(t, dir)}
}

func storeDSN(t testing.TB, dir string) string {
	t.Helper()
	if dsn, ok := storeDSNs.Load(dir); ok {
		return dsn.(string)
	}
	dsn := pgtest.Database(t)
	storeDSNs.Store(dir, dsn)
	t.Cleanup(func() { storeDSNs.Delete(dir) })
	return dsn
}

// openStore opens the store of data directory dir, for a test that
// prepares or inspects it: on the embedded store only while no hookd runs
// on dir (the file is locked), on PostgreSQL at any time. A test that
// starts hookd on dir afterwards closes it first; it is closed at the end
// of the test otherwise.
func openStore(t testing.TB, dir string) store.Store {
	t.Helper()
	var (
		db  store.Store
		err error
	)
	if onPostgres() {
		db, err = postgres.Open(context.Background(), storeDSN(t, dir), postgres.Options{})
	} else {
		db, err = bolt.Open(dir, bolt.Options{})
	}
	if err != nil {
		t.Fatalf("open the store of %s: %v", dir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// storeBytes returns all that the store of data directory dir holds, as
// bytes to search: the embedded store's file, or every row of every table
// of the PostgreSQL database as text.
func storeBytes(t testing.TB, dir string) []byte {
	t.Helper()
	if !onPostgres() {
		raw, err := os.ReadFile(dir + "/" + bolt.FileName)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, storeDSN(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, table := range tables {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+` t`)
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			out = append(out, s...)
			out = append(out, '\n')
		}
	}
	return out
}

// boltOnly skips a test of what only the embedded store has (its file,
// its hot copy, the data directory's disk) when the tests run on
// PostgreSQL.
func boltOnly(t testing.TB, what string) {
	t.Helper()
	if onPostgres() {
		t.Skipf("%s: the embedded store's only (%s=postgres)", what, storeEnv)
	}
}
