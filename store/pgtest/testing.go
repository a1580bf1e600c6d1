package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
)

// requireEnv, set to 1 (as `make test` does), turns a missing server into a
// test failure instead of a skip.
const requireEnv = "HOOKD_REQUIRE_EXTERNAL"

// missingMessage is what a test says when no server is installed.
var missingMessage = fmt.Sprintf("PostgreSQL %d+ not found: `make test` installs it (apt-get install postgresql)", MinVersion)

// shared is the one cluster of a test binary whose TestMain calls Main,
// started by the first Database call.
var shared struct {
	sync.Mutex
	main    bool // Main is running the tests
	cluster *Cluster
	dir     string
	err     error // why the cluster could not start; it is not tried again

	templates map[string]templateDB // DatabaseFrom's, by name
}

// Main runs the package's tests (call it from TestMain) and then stops the
// cluster that Database started, if any, and removes its data. It exits
// with the tests' status.
func Main(m *testing.M) {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.cluster != nil {
		if err := shared.cluster.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	shared.Unlock()
	os.Exit(code)
}

// Database returns the DSN of a new, empty database on the test binary's
// cluster (see Main), dropped when the test ends. Without a server it
// skips the test, or fails it when HOOKD_REQUIRE_EXTERNAL=1.
func Database(t testing.TB) string {
	t.Helper()
	c := sharedCluster(t)
	dsn, err := c.NewDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The cluster goes when the tests end; dropping each database
		// as its test ends keeps a long run's disk use flat.
		if err := c.DropDatabase(context.Background(), dsn); err != nil {
			t.Logf("pgtest: dropping the test's database: %v", err)
		}
	})
	return dsn
}

// DatabaseFrom is Database for a database that starts as a copy of the
// template named name, which prepare fills once per test binary (it must
// close its connections before it returns). Copying a prepared database is
// much faster than preparing each one: the store's tests use it for the
// migrated schema.
func DatabaseFrom(t testing.TB, name string, prepare func(ctx context.Context, dsn string) error) string {
	t.Helper()
	c := sharedCluster(t)
	shared.Lock()
	tpl, ok := shared.templates[name]
	if !ok {
		if shared.templates == nil {
			shared.templates = map[string]templateDB{}
		}
		dsn, err := c.NewDatabase(context.Background())
		if err == nil {
			err = prepare(context.Background(), dsn)
		}
		tpl = templateDB{dsn: dsn, err: err}
		shared.templates[name] = tpl
	}
	shared.Unlock()
	if tpl.err != nil {
		t.Fatalf("pgtest: preparing the template %s: %v", name, tpl.err)
	}
	dsn, err := c.newDatabaseFrom(t.Context(), tpl.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.DropDatabase(context.Background(), dsn); err != nil {
			t.Logf("pgtest: dropping the test's database: %v", err)
		}
	})
	return dsn
}

// templateDB is a prepared database that DatabaseFrom copies.
type templateDB struct {
	dsn string
	err error
}

func sharedCluster(t testing.TB) *Cluster {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatal("pgtest: Database needs the package's TestMain to call pgtest.Main")
	}
	if shared.cluster == nil && shared.err == nil {
		shared.dir, shared.err = os.MkdirTemp("", "hookd-pg")
		if shared.err == nil {
			logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
			shared.cluster, shared.err = start(context.Background(), shared.dir, logf)
		}
	}
	if shared.err != nil {
		unavailable(t, shared.err)
	}
	return shared.cluster
}

// New starts a cluster of the test's own, for a test that stops, kills and
// restarts it; it is stopped and removed when the test ends. Without a
// server it skips the test, or fails it when HOOKD_REQUIRE_EXTERNAL=1.
func New(t testing.TB) *Cluster {
	t.Helper()
	// Not t.TempDir(): as root, the server's user must pass through every
	// directory above the data directory, and t.TempDir's parent is
	// private.
	dir, err := os.MkdirTemp("", "hookd-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c, err := start(t.Context(), dir, t.Logf)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// unavailable ends the test for a cluster that could not start: a skip
// when no server is installed (a failure under HOOKD_REQUIRE_EXTERNAL=1),
// else a failure.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatal(err)
	}
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s, and %s=1", missingMessage, requireEnv)
	}
	t.Skip(missingMessage)
}
