package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// count returns the rows of table t in the database of conn.
func count(t *testing.T, conn *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("counting %s: %v", table, err)
	}
	return n
}

func TestDatabasesAreSeparate(t *testing.T) {
	a, b := Database(t), Database(t)
	if a == b {
		t.Fatalf("two databases share the DSN %s", a)
	}
	ca, cb := connect(t, a), connect(t, b)
	mustExec(t, ca, "CREATE TABLE events (id int PRIMARY KEY)")
	mustExec(t, ca, "INSERT INTO events VALUES (1), (2)")
	if n := count(t, ca, "events"); n != 2 {
		t.Fatalf("database a holds %d rows, want 2", n)
	}
	var table *string
	if err := cb.QueryRow(t.Context(), "SELECT to_regclass('events')::text").Scan(&table); err != nil {
		t.Fatal(err)
	}
	if table != nil {
		t.Fatalf("database b has the table %s created in database a", *table)
	}
}

// TestDatabaseFrom: databases copied from a template start with what
// prepare wrote, once, and are separate from each other afterwards.
func TestDatabaseFrom(t *testing.T) {
	prepared := 0
	prepare := func(ctx context.Context, dsn string) error {
		prepared++
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE events (id int PRIMARY KEY); INSERT INTO events VALUES (1)")
		return err
	}
	a, b := DatabaseFrom(t, "one-row", prepare), DatabaseFrom(t, "one-row", prepare)
	if prepared != 1 {
		t.Fatalf("prepare ran %d times, want once", prepared)
	}
	ca, cb := connect(t, a), connect(t, b)
	mustExec(t, ca, "INSERT INTO events VALUES (2)")
	if na, nb := count(t, ca, "events"), count(t, cb, "events"); na != 2 || nb != 1 {
		t.Fatalf("got %d and %d rows, want 2 in the written copy and 1 in the other", na, nb)
	}
}

func TestSettings(t *testing.T) {
	conn := connect(t, Database(t))
	for name, want := range map[string]string{
		"listen_addresses":   "",
		"max_connections":    "300",
		"fsync":              "off",
		"synchronous_commit": "on",
	} {
		var got string
		if err := conn.QueryRow(t.Context(), "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	var version int
	if err := conn.QueryRow(t.Context(), "SELECT current_setting('server_version_num')::int / 10000").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < MinVersion {
		t.Errorf("server version %d, want %d or newer", version, MinVersion)
	}
}

func TestPool(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), "CREATE TABLE n (v int)"); err != nil {
		t.Fatal(err)
	}
	const writers = 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			_, err := pool.Exec(t.Context(), "INSERT INTO n VALUES ($1)", i)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n, sum int
	if err := pool.QueryRow(t.Context(), "SELECT count(*), sum(v) FROM n").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != writers || sum != writers*(writers-1)/2 {
		t.Fatalf("%d rows summing to %d, want %d summing to %d", n, sum, writers, writers*(writers-1)/2)
	}
}

// outage takes the cluster away with down, checks that it is unreachable,
// brings it back and checks that the committed rows survived.
func outage(t *testing.T, down func(*Cluster)) {
	c := New(t)
	dsn, err := c.NewDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, "CREATE TABLE events (id int PRIMARY KEY)")
	mustExec(t, conn, "INSERT INTO events SELECT generate_series(1, 1000)")

	down(c)
	if err := conn.Ping(t.Context()); err == nil {
		t.Fatal("a connection opened before the outage still answers")
	}
	if _, err := pgx.Connect(t.Context(), dsn); err == nil {
		t.Fatal("connected to a cluster that is down")
	}

	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, connect(t, dsn), "events"); n != 1000 {
		t.Fatalf("%d rows after the restart, want 1000", n)
	}
	// The counter of database names carries over the restart.
	again, err := c.NewDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if again == dsn {
		t.Fatalf("a new database after the restart reuses %s", dsn)
	}
}

func TestStopStartKeepsData(t *testing.T) {
	outage(t, func(c *Cluster) {
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestKillStartRecovers(t *testing.T) {
	outage(t, func(c *Cluster) { c.Kill() })
}

func TestStartTwiceRefused(t *testing.T) {
	c := New(t)
	if err := c.Start(t.Context()); err == nil {
		t.Fatal("a second Start of a running cluster succeeded")
	}
	if _, err := c.NewDatabase(t.Context()); err != nil {
		t.Fatalf("the cluster stopped working after the refused Start: %v", err)
	}
}

func TestStartRefusesUsedDirectory(t *testing.T) {
	c := New(t)
	if _, err := Start(t.Context(), c.dataDir); err == nil || errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start on a running cluster's data directory: %v, want initdb's refusal", err)
	}
}

// touch creates an executable file and the directories above it.
func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindServer(t *testing.T) {
	t.Setenv(binEnv, "")
	root := t.TempDir()
	if _, _, err := findServer(root); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("empty root: %v, want ErrNotInstalled", err)
	}
	touch(t, filepath.Join(root, "14", "bin", "initdb"))
	touch(t, filepath.Join(root, "14", "bin", "postgres"))
	if _, _, err := findServer(root); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("only PostgreSQL 14: %v, want ErrNotInstalled", err)
	}
	touch(t, filepath.Join(root, "15", "bin", "initdb"))
	touch(t, filepath.Join(root, "15", "bin", "postgres"))
	touch(t, filepath.Join(root, "16", "bin", "initdb")) // no server binary
	touch(t, filepath.Join(root, "9", "bin", "postgres"))
	bin, version, err := findServer(root)
	if err != nil || version != 15 || bin != filepath.Join(root, "15", "bin") {
		t.Fatalf("findServer = %s, %d, %v; want 15's bin", bin, version, err)
	}
	touch(t, filepath.Join(root, "17", "bin", "initdb"))
	touch(t, filepath.Join(root, "17", "bin", "postgres"))
	if bin, version, err = findServer(root); err != nil || version != 17 {
		t.Fatalf("findServer = %s, %d, %v; want the newest, 17", bin, version, err)
	}
}

func TestFindServerEnv(t *testing.T) {
	bin, version, err := findServer(debianRoot)
	if err != nil {
		unavailable(t, err)
	}
	t.Setenv(binEnv, bin)
	got, gotVersion, err := findServer(t.TempDir())
	if err != nil || got != bin || gotVersion != version {
		t.Fatalf("with %s=%s: %s, %d, %v", binEnv, bin, got, gotVersion, err)
	}
	t.Setenv(binEnv, t.TempDir())
	if _, _, err := findServer(debianRoot); err == nil || errors.Is(err, ErrNotInstalled) {
		t.Fatalf("%s naming an empty directory: %v, want an error that is not a skip", binEnv, err)
	}
}

func TestStartAfterServerExitedByItself(t *testing.T) {
	c := New(t)
	c.mu.Lock()
	p := c.proc
	c.mu.Unlock()
	// SIGQUIT is PostgreSQL's immediate shutdown: the server goes away
	// without anyone calling Stop or Kill.
	if err := p.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewDatabase(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// orphanEnv makes TestClusterDiesWithTestBinary, run as a child process,
// start a cluster, print its DSN and data directory, and wait to be killed.
const orphanEnv = "PGTEST_ORPHAN_CHILD"

func TestClusterDiesWithTestBinary(t *testing.T) {
	if os.Getenv(orphanEnv) == "1" {
		dir, err := os.MkdirTemp("", "hookd-pg")
		if err != nil {
			t.Fatal(err)
		}
		c, err := Start(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("%s\n%s\n", c.DSN("postgres"), dir)
		select {}
	}
	if _, _, err := findServer(debianRoot); err != nil {
		unavailable(t, err)
	}
	child := osexec.Command(os.Args[0], "-test.run=^TestClusterDiesWithTestBinary$", "-test.timeout=5m")
	child.Env = append(os.Environ(), orphanEnv+"=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	var dsn, dir string
	if lines.Scan() {
		dsn = lines.Text()
	}
	if lines.Scan() {
		dir = lines.Text()
	}
	if dir == "" {
		child.Process.Kill()
		child.Wait()
		t.Fatalf("the child printed no DSN and data directory (%v)", lines.Err())
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir)
		os.RemoveAll(cfg.Host)
	})
	if conn, err := pgx.Connect(t.Context(), dsn); err != nil {
		t.Fatalf("the child's cluster: %v", err)
	} else {
		conn.Close(t.Context())
	}
	child.Process.Kill()
	child.Wait()
	// The kernel delivers the parent-death signal at once, but the server
	// takes a moment to shut down: poll.
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			break
		}
		conn.Close(t.Context())
		if time.Now().After(deadline) {
			t.Fatal("the cluster still answers a minute after its test binary was killed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// missingEnv makes TestMissingServer, run as a child process, end the
// way a test does when no server is installed.
const missingEnv = "PGTEST_MISSING_CHILD"

func TestMissingServer(t *testing.T) {
	if os.Getenv(missingEnv) == "1" {
		unavailable(t, ErrNotInstalled)
		return
	}
	for _, tc := range []struct {
		require string
		fail    bool
		says    string
	}{
		{"", false, "--- SKIP: TestMissingServer"},
		{"1", true, "--- FAIL: TestMissingServer"},
	} {
		child := osexec.Command(os.Args[0], "-test.run=^TestMissingServer$", "-test.v")
		child.Env = append(os.Environ(), missingEnv+"=1", requireEnv+"="+tc.require)
		out, err := child.CombinedOutput()
		if failed := err != nil; failed != tc.fail {
			t.Fatalf("%s=%q: exit error %v, want failure %v; output:\n%s", requireEnv, tc.require, err, tc.fail, out)
		}
		for _, want := range []string{tc.says, missingMessage} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s=%q: output lacks %q:\n%s", requireEnv, tc.require, want, out)
			}
		}
	}
}

// TestDurableClusterAndCPUTime: StartDurable keeps PostgreSQL's durable
// defaults, and CPUTime grows with the work the server does.
func TestDurableClusterAndCPUTime(t *testing.T) {
	dir, err := os.MkdirTemp("", "hookd-pg")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	c, err := StartDurable(t.Context(), dir)
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dsn, err := c.NewDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dsn)
	for _, name := range []string{"fsync", "full_page_writes"} {
		var got string
		if err := conn.QueryRow(t.Context(), "SELECT current_setting($1)", name).Scan(&got); err != nil || got != "on" {
			t.Errorf("%s = %q (%v), want on", name, got, err)
		}
	}
	before, err := c.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, "SELECT count(*) FROM generate_series(1, 3000000)")
	after, err := c.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPUTime went from %v to %v over a query of three million rows, want it to grow", before, after)
	}
}
