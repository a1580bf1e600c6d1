// Package pgtest runs throw-away PostgreSQL clusters for hookd's tests: a
// real server (Debian's postgresql package, version 15 or newer, which
// `make test` installs through .ci/postgres.sh) started from its own data
// directory and reached only through a Unix socket in a private temporary
// directory, so clusters of parallel test binaries never meet.
//
// A package whose tests need a database calls Main from its TestMain and
// Database(t) in each test; the package's one cluster is started on the
// first Database call and stopped when the tests end. A test that takes
// the database away (Stop, Kill) and brings it back (Start) gets a cluster
// of its own from New.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// MinVersion is the oldest PostgreSQL major version hookd supports.
const MinVersion = 15

// debianRoot holds one <major>/bin directory per installed server version
// in Debian's packages.
const debianRoot = "/usr/lib/postgresql"

// binEnv names a directory holding initdb and postgres to use instead of
// the newest one under debianRoot.
const binEnv = "HOOKD_PG_BIN"

// superuser is the cluster's bootstrap superuser, in every DSN.
const superuser = "postgres"

// maxConnections leaves room for several hookd processes with their pools
// and the tests' own connections on one cluster.
const maxConnections = 300

// startTimeout bounds how long a start may take before it counts as failed,
// whatever the caller's context allows.
const startTimeout = time.Minute

// stopTimeout bounds a fast shutdown; after it the cluster is killed.
const stopTimeout = 30 * time.Second

// pollInterval is the pause between connection attempts while a cluster
// starts.
const pollInterval = 25 * time.Millisecond

// logTail is how much of the server's log an error message quotes.
const logTail = 4 << 10

// ErrNotInstalled is returned by Start when no PostgreSQL server of
// MinVersion or newer is installed.
var ErrNotInstalled = errors.New("pgtest: PostgreSQL " + strconv.Itoa(MinVersion) + "+ not found")

// Cluster is one PostgreSQL cluster: a data directory and, while it runs,
// its server process. Its methods are safe for concurrent use.
type Cluster struct {
	bin     string // directory of initdb and postgres
	version int    // major version
	dataDir string
	sockDir string
	logPath string              // the server's stdout and stderr, appended across starts
	cred    *syscall.Credential // the unprivileged user the server runs as when hookd's tests run as root
	logf    func(format string, args ...any)
	durable bool // fsync and full-page writes on (StartDurable)

	mu   sync.Mutex
	proc *server // nil while stopped

	nextDB atomic.Int64
}

// server is one run of the postgres process.
type server struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited and been waited for
}

// Start creates a cluster in dir (missing or empty) with initdb and starts
// it. The server listens only on a Unix socket in a new directory under
// os.TempDir() (a socket path must stay under about 100 bytes, which a test's
// temporary directory may not). It returns ErrNotInstalled when no server is
// installed. Close stops the cluster and removes the socket directory; dir
// is the caller's.
//
// PostgreSQL refuses to run as root: when the process runs as root, initdb
// and the server run as the postgres user (which Debian's package creates),
// or else nobody, and dir is handed to that user; every directory above dir
// must let it through (os.MkdirTemp's directories under /tmp do).
func Start(ctx context.Context, dir string) (*Cluster, error) {
	return start(ctx, dir, nil)
}

// StartDurable is Start with PostgreSQL's durable defaults (fsync and
// full-page writes on), for measurements that compare hookd's stores: a
// commit waits for the disk there as on the embedded store.
func StartDurable(ctx context.Context, dir string) (*Cluster, error) {
	return startCluster(ctx, dir, nil, true)
}

func start(ctx context.Context, dir string, logf func(string, ...any)) (*Cluster, error) {
	return startCluster(ctx, dir, logf, false)
}

func startCluster(ctx context.Context, dir string, logf func(string, ...any), durable bool) (*Cluster, error) {
	bin, version, err := findServer(debianRoot)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, version: version, dataDir: dir, logf: logf, durable: durable}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if c.cred, err = serverCredential(); err != nil {
		return nil, err
	}
	if c.sockDir, err = os.MkdirTemp("", "pg"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c.logPath = filepath.Join(c.sockDir, "postgres.log")
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(c.sockDir)
		}
	}()
	if c.cred != nil {
		if err := handOver(c.cred, dir, c.sockDir); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	initdb := c.command(ctx, "initdb", "--pgdata", dir, "--username", superuser, "--auth", "trust",
		"--encoding", "UTF8", "--locale", "C", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb %s: %v\n%s", dir, err, out)
	}
	if err := c.run(ctx, t0); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// findServer returns the directory of initdb and postgres: $HOOKD_PG_BIN
// when set (its version checked), else the newest <major>/bin under root
// of MinVersion or newer holding both.
// Available reports whether a PostgreSQL server of MinVersion or newer is
// installed: nil, or an error that wraps ErrNotInstalled.
func Available() error {
	_, _, err := findServer(debianRoot)
	return err
}

func findServer(root string) (bin string, version int, err error) {
	if bin := os.Getenv(binEnv); bin != "" {
		version, err := serverVersion(bin)
		if err != nil {
			return "", 0, fmt.Errorf("pgtest: %s=%s: %w", binEnv, bin, err)
		}
		if version < MinVersion {
			return "", 0, fmt.Errorf("pgtest: %s=%s holds PostgreSQL %d, hookd needs %d or newer", binEnv, bin, version, MinVersion)
		}
		return bin, version, nil
	}
	entries, _ := os.ReadDir(root)
	var versions []int
	for _, e := range entries {
		if v, err := strconv.Atoi(e.Name()); err == nil && v >= MinVersion {
			versions = append(versions, v)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(versions)))
	for _, v := range versions {
		bin := filepath.Join(root, strconv.Itoa(v), "bin")
		if executable(filepath.Join(bin, "initdb")) && executable(filepath.Join(bin, "postgres")) {
			return bin, v, nil
		}
	}
	return "", 0, ErrNotInstalled
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// versionLine matches `postgres --version`: "postgres (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)".
var versionLine = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

func serverVersion(bin string) (int, error) {
	out, err := exec.Command(filepath.Join(bin, "postgres"), "--version").Output()
	if err != nil {
		return 0, err
	}
	m := versionLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unexpected version %q", bytes.TrimSpace(out))
	}
	return strconv.Atoi(string(m[1]))
}

// serverCredential returns nil when not root, else the user the server
// runs as: postgres, or nobody when there is no postgres user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			return nil, errors.New("pgtest: running as root and neither a postgres nor a nobody user exists to run PostgreSQL as")
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// handOver gives the server's user the data and socket directories, after
// checking that it can pass through every directory above the data directory.
func handOver(cred *syscall.Credential, dataDir, sockDir string) error {
	for d := filepath.Dir(dataDir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		passable := fi.Mode()&0o001 != 0 ||
			(st != nil && st.Uid == cred.Uid && fi.Mode()&0o100 != 0) ||
			(st != nil && st.Gid == cred.Gid && fi.Mode()&0o010 != 0)
		if !passable {
			return fmt.Errorf("pgtest: the server runs as uid %d (PostgreSQL refuses root), which cannot pass through %s to reach %s: use a data directory from os.MkdirTemp", cred.Uid, d, dataDir)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	for _, d := range []string{dataDir, sockDir} {
		if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	return nil
}

// command prepares one of the server's programs, run as the server's user.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dataDir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

// Start starts the stopped or killed cluster again on its data directory
// and waits until it accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	return c.run(ctx, time.Now())
}

// run starts the server and waits until it accepts connections, then logs
// the start with the time since t0.
func (c *Cluster) run(ctx context.Context, t0 time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		select {
		case <-c.proc.done: // it exited by itself
			c.proc = nil
		default:
			return errors.New("pgtest: the cluster is already running")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		p, err := c.launch(ctx)
		if err == nil {
			c.proc = p
			if c.logf != nil {
				c.logf("pgtest: PostgreSQL %d started in %s (socket in %s)", c.version, time.Since(t0).Round(time.Millisecond), c.sockDir)
			}
			return nil
		}
		// After Kill, the old server's processes may take a moment to
		// die and let go of its shared memory; the new one refuses to
		// start until they have.
		if !errors.Is(err, errSharedMemoryInUse) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pollInterval):
		}
	}
}

var errSharedMemoryInUse = errors.New("pgtest: the previous server's shared memory is still in use")

// launch runs one postgres process and waits for it to accept connections;
// it leaves no process behind when it fails.
func (c *Cluster) launch(ctx context.Context) (*server, error) {
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer logFile.Close()
	logStart, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	// fsync, full-page writes and the rest only protect against the
	// operating system crashing, which a throw-away cluster never
	// survives anyway. synchronous_commit stays on: tests kill the
	// server (Kill) and must find every commit it acknowledged, and a
	// commit is then only a write(2) into the page cache, which outlives
	// the process.
	args := []string{"-D", c.dataDir,
		"-c", "listen_addresses=",
		"-c", "unix_socket_directories=" + c.sockDir,
		"-c", "max_connections=" + strconv.Itoa(maxConnections),
		"-c", "shared_buffers=64MB",
	}
	if !c.durable {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), args...)
	cmd.Dir = c.dataDir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.cred,
		// Its own process group, so Kill takes down the server's
		// children with it, as a crash of the machine would.
		Setpgid: true,
		// An immediate shutdown when the test binary dies (a test
		// timeout, say), so that no cluster outlives its tests.
		Pdeathsig: syscall.SIGQUIT,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	p := &server{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(attempt, c.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return p, nil
		}
		select {
		case <-p.done:
			tail := c.logSince(logStart)
			if bytes.Contains(tail, []byte("pre-existing shared memory block")) {
				return nil, errSharedMemoryInUse
			}
			return nil, fmt.Errorf("pgtest: postgres exited during start-up (%v); its log:\n%s", cmd.ProcessState, tail)
		case <-ctx.Done():
			p.kill()
			return nil, fmt.Errorf("pgtest: postgres did not accept connections in time (%v): %v; its log:\n%s", ctx.Err(), err, c.logSince(logStart))
		case <-time.After(pollInterval):
		}
	}
}

// logSince returns the server's log written after offset, at most its
// last logTail bytes.
func (c *Cluster) logSince(offset int64) []byte {
	b, err := os.ReadFile(c.logPath)
	if err != nil || int64(len(b)) < offset {
		return nil
	}
	b = b[offset:]
	if len(b) > logTail {
		b = b[len(b)-logTail:]
	}
	return b
}

// kill sends SIGKILL to the server's process group and waits for the
// server to exit.
func (p *server) kill() {
	pid := p.cmd.Process.Pid
	// Each of the server's processes is in a session of its own
	// (PostgreSQL's children call setsid), so they are found by parent.
	children := childrenOf(pid)
	syscall.Kill(-pid, syscall.SIGKILL)
	for _, c := range children {
		syscall.Kill(c, syscall.SIGKILL)
	}
	<-p.done
	deadline := time.Now().Add(stopTimeout)
	for time.Now().Before(deadline) && anyLive(children) {
		time.Sleep(pollInterval)
	}
}

// CPUTime returns the CPU time the running server has used since it
// started: the postmaster's own and its children's, live or ended.
func (c *Cluster) CPUTime() (time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return 0, errors.New("pgtest: the cluster is not running")
	}
	pid := c.proc.cmd.Process.Pid
	ticks, ok := cpuTicks(pid, true)
	if !ok {
		return 0, errors.New("pgtest: the server's process is gone")
	}
	for _, child := range childrenOf(pid) {
		t, _ := cpuTicks(child, false)
		ticks += t
	}
	// Linux reports these in clock ticks of USER_HZ, 100 a second.
	return time.Duration(ticks) * (time.Second / 100), nil
}

// cpuTicks returns utime+stime of process pid, with the ended children
// it waited for (cutime+cstime) when withChildren.
func cpuTicks(pid int, withChildren bool) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	// After the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, false
	}
	var sum int64
	last := 12
	if withChildren {
		last = 14
	}
	for k := 11; k <= last; k++ {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		sum += v
	}
	return sum, true
}

// procStat returns the state and parent of process pid from /proc, ok
// false when it is gone.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid ...: comm may hold spaces, so read after its
	// closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, true
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(n); ok && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

// anyLive reports whether one of pids is alive: a process that died and
// that no process reaped (a zombie) holds no socket and does not count.
func anyLive(pids []int) bool {
	for _, pid := range pids {
		if state, _, ok := procStat(pid); ok && state != "Z" {
			return true
		}
	}
	return false
}

// DSN returns the URL of database db on the cluster, for pgx and libpq:
// postgres:///db?host=<socket dir>&user=postgres&sslmode=disable.
func (c *Cluster) DSN(db string) string {
	q := url.Values{"host": {c.sockDir}, "user": {superuser}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", Path: "/" + db, RawQuery: q.Encode()}).String()
}

// NewDatabase creates an empty database with a name unused on this cluster
// and returns its DSN.
func (c *Cluster) NewDatabase(ctx context.Context) (string, error) {
	return c.newDatabaseFrom(ctx, "")
}

// newDatabaseFrom creates a database as a copy of the database of DSN
// template (template0's empty one when ""), which must have no
// connections, and returns its DSN.
func (c *Cluster) newDatabaseFrom(ctx context.Context, template string) (string, error) {
	name := fmt.Sprintf("hookd_test_%d", c.nextDB.Add(1))
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		u, err := url.Parse(template)
		if err != nil {
			return "", fmt.Errorf("pgtest: template %q: %w", template, err)
		}
		sql += " TEMPLATE " + pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return "", fmt.Errorf("pgtest: creating database %s: %w", name, err)
	}
	return c.DSN(name), nil
}

// DropDatabase drops the database of dsn, disconnecting its sessions.
func (c *Cluster) DropDatabase(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{cfg.Database}.Sanitize()+" WITH (FORCE)")
	return err
}

// Stop shuts the server down fast (open transactions are rolled back,
// sessions are closed) and waits until it has exited; a server that takes
// longer than stopTimeout is killed. Stopping a stopped cluster does
// nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.proc
	if p == nil {
		return nil
	}
	c.proc = nil
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		p.kill()
		return fmt.Errorf("pgtest: postgres did not shut down in %s and was killed", stopTimeout)
	}
}

// Kill ends the server and all its processes at once with SIGKILL, as a
// crash would, and waits until the server has exited; Start recovers the
// cluster from its write-ahead log. Killing a stopped cluster does nothing.
func (c *Cluster) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.proc.kill()
		c.proc = nil
	}
}

// Close stops the cluster and removes its socket directory. The data
// directory is left to its owner.
func (c *Cluster) Close() error {
	err := c.Stop()
	if rmErr := os.RemoveAll(c.sockDir); err == nil {
		err = rmErr
	}
	return err
}
