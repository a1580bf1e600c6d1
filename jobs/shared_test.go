package jobs

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"gocloud.dev/blob"

	"hookd/blobsink"
	"hookd/store"
	"hookd/store/pgtest"
	"hookd/store/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// sharedNode is one process of a cluster in these tests: its own handle
// on the one database, its own handle on the one directory of files.
type sharedNode struct {
	dsn    string
	db     *postgres.DB
	bucket *blob.Bucket
	ex     *Exporter
}

// openSharedNodes opens n nodes on a fresh database and a shared
// directory of files, all on the clock now, each with an exporter of one
// writer on the database's export queue.
func openSharedNodes(t *testing.T, n int, now func() time.Time, lease time.Duration) []*sharedNode {
	t.Helper()
	dsn := pgtest.Database(t)
	url := "file://" + filepath.ToSlash(filepath.Join(t.TempDir(), "exports"))
	nodes := make([]*sharedNode, n)
	for i := range nodes {
		db, err := postgres.Open(t.Context(), dsn, postgres.Options{MaxConns: 4, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		b, err := blobsink.Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Log: zerolog.Nop(), PublicURL: testPublicURL,
			Writers: 1, Poll: 20 * time.Millisecond, Shared: db.ExportClaims(uuid.New()), Lease: lease})
		nodes[i] = &sharedNode{dsn: dsn, db: db, bucket: b, ex: ex}
	}
	return nodes
}

// fileLines returns the number of lines of the file at key.
func fileLines(t *testing.T, b *blob.Bucket, key string) int {
	t.Helper()
	_, plain := readFile(t, b, key, blobsink.None)
	return strings.Count(string(plain), "\n")
}

// TestSharedExportersWriteAtOnce: three nodes of one writer each share
// the export jobs of one database: their writers write at once (a node's
// writers are its own, not the cluster's), every job is begun once and
// completes with all its events, and no job is written by two nodes.
func TestSharedExportersWriteAtOnce(t *testing.T) {
	nodes := openSharedNodes(t, 3, nil, 0)
	db := nodes[0].db
	type want struct {
		sub    store.Subscription
		events int
	}
	jobs := map[uuid.UUID]want{}
	for i := range 9 {
		s := newSub(t, db, false)
		n := 20 + i
		addFailed(t, db, s, n)
		j, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
		if err != nil {
			t.Fatal(err)
		}
		jobs[j.ID] = want{s, n}
	}
	// The first three writes wait until three are under way.
	var mu sync.Mutex
	writing := 0
	allWriting := make(chan struct{})
	writers := map[uuid.UUID]int{} // job -> node
	for i, n := range nodes {
		n.ex.beforeWrite = func(_ context.Context, j store.ExportJob) {
			mu.Lock()
			if _, dup := writers[j.ID]; dup {
				t.Errorf("job %s begun by node %d after node %d", j.ID, i, writers[j.ID])
			}
			writers[j.ID] = i
			writing++
			if writing == 3 {
				close(allWriting)
			}
			first := writing <= 3
			mu.Unlock()
			if first {
				select {
				case <-allWriting:
				case <-time.After(30 * time.Second):
					t.Error("three writes were not under way at once within 30s")
				}
			}
		}
		n.ex.Start(t.Context())
		defer n.ex.Close()
	}
	deadline := time.Now().Add(time.Minute)
	for id, w := range jobs {
		for {
			j, err := db.ExportByID(id)
			if err != nil {
				t.Fatal(err)
			}
			if j.State == store.ExportCompleted {
				if j.Attempts != 1 || j.EventCount != int64(w.events) {
					t.Errorf("job %s: %d attempts, %d events; want 1 and %d", id, j.Attempts, j.EventCount, w.events)
				}
				if got := fileLines(t, nodes[1].bucket, j.Key); got != w.events {
					t.Errorf("job %s: file of %d lines, want %d", id, got, w.events)
				}
				break
			}
			if !j.State.Active() || time.Now().After(deadline) {
				t.Fatalf("job %s is %s (%s), want completed within a minute", id, j.State, j.Error)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	by := map[int]int{}
	for _, n := range writers {
		by[n]++
	}
	if len(by) != 3 {
		t.Errorf("jobs written by node: %v, want every node to write", by)
	}
}

// TestSharedExporterLostClaimLeavesTheFile: a node whose claim ran out
// while it wrote (it was paused past its lease) and whose job another node
// took over, wrote again and completed, neither commits its file nor
// removes the other's, and changes nothing of the job.
func TestSharedExporterLostClaimLeavesTheFile(t *testing.T) {
	clk := &clock{t: time.Now().UTC()}
	nodes := openSharedNodes(t, 2, clk.now, 0)
	slow, other := nodes[0], nodes[1]
	s := newSub(t, slow.db, false)
	addFailed(t, slow.db, s, 30)
	job, err := slow.db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	var tookOver, wrote bool
	slow.ex.beforeWrite = func(ctx context.Context, j store.ExportJob) {
		clk.add(DefaultExportLease + time.Second) // the node pauses past its lease
		tookOver = other.ex.step(ctx)
		wrote = other.ex.step(ctx)
	}
	if !slow.ex.step(t.Context()) {
		t.Fatal("the slow node wrote no job")
	}
	if !tookOver || !wrote {
		t.Fatalf("the other node took over %v and wrote %v, want both", tookOver, wrote)
	}
	j, err := other.db.ExportByID(job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != store.ExportCompleted || j.Attempts != 2 || j.EventCount != 30 {
		t.Fatalf("got %s after %d attempts with %d events, want completed by the other node (2 attempts, 30 events)", j.State, j.Attempts, j.EventCount)
	}
	if got := fileLines(t, other.bucket, j.Key); got != 30 {
		t.Fatalf("the completed file has %d lines, want 30", got)
	}
	attrs, err := other.bucket.Attributes(t.Context(), j.Key)
	if err != nil || attrs.Size != j.Size {
		t.Fatalf("the completed file: %v, %v; want %d bytes as recorded", attrs, err, j.Size)
	}
}

// claimOf reads job id's claim: its token and how long it holds.
func claimOf(t *testing.T, conn *pgx.Conn, id uuid.UUID) (token *uuid.UUID, until *time.Time) {
	t.Helper()
	if err := conn.QueryRow(t.Context(), `SELECT claim_token, claimed_until FROM exports WHERE id = $1`, id).Scan(&token, &until); err != nil {
		t.Fatal(err)
	}
	return token, until
}

// pollFor polls cond for up to 30 seconds: the renewals run on the wall
// clock, against the database server.
func pollFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSharedExporterRenewsItsClaim: a writer renews its claim while it
// writes, so that a write longer than the lease keeps its job (no other
// node takes it over), and completes it in one attempt; a writer whose
// claim another took stops its write and leaves the job alone.
func TestSharedExporterRenewsItsClaim(t *testing.T) {
	const lease = 300 * time.Millisecond
	nodes := openSharedNodes(t, 2, nil, lease)
	one, other := nodes[0], nodes[1]
	conn, err := pgx.Connect(t.Context(), one.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	s := newSub(t, one.db, false)
	addFailed(t, one.db, s, 10)
	job, err := one.db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	one.ex.beforeWrite = func(ctx context.Context, j store.ExportJob) {
		_, first := claimOf(t, conn, j.ID)
		// Past its first lease, the claim still holds, renewed.
		pollFor(t, "the claim holding past its first lease", func() bool {
			_, until := claimOf(t, conn, j.ID)
			now := time.Now()
			return now.After(first.Add(lease)) && until.After(now)
		})
		if other.ex.step(ctx) {
			t.Error("another node took over or wrote the job while its claim was renewed")
		}
	}
	if !one.ex.step(t.Context()) {
		t.Fatal("no job written")
	}
	j, err := one.db.ExportByID(job.ID)
	if err != nil || j.State != store.ExportCompleted || j.Attempts != 1 {
		t.Fatalf("got %s after %d attempts (%v), want completed in one", j.State, j.Attempts, err)
	}

	// Another claim replaces the writer's: its next renewal finds it
	// lost and stops the write, which leaves the job as it is.
	addFailed(t, one.db, s, 10)
	job, err = one.db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	stolen := uuid.New()
	one.ex.beforeWrite = func(ctx context.Context, j store.ExportJob) {
		if _, err := conn.Exec(ctx, `UPDATE exports SET claim_token = $2 WHERE id = $1`, j.ID, stolen); err != nil {
			t.Error(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
			t.Error("the write went on for 30s after its claim was taken")
		}
	}
	one.ex.step(t.Context())
	j, err = one.db.ExportByID(job.ID)
	if err != nil || j.State != store.ExportWriting {
		t.Fatalf("after the claim was taken: got %s (%v), want the job left writing to the claim's holder", j.State, err)
	}
	if token, _ := claimOf(t, conn, job.ID); token == nil || *token != stolen {
		t.Errorf("the claim is %v, want the one that took it, %s", token, stolen)
	}
	if ok, err := one.bucket.Exists(t.Context(), j.Key); err != nil || ok {
		t.Errorf("a file is at the job's key (%v, %v), want none: the write stopped before its commit", ok, err)
	}
}
