package postgres

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
	"hookd/store/pgtest"
)

// testLease is the export claims' lease in these tests.
const testLease = 30 * time.Second

// sharedClock is the one clock of several nodes in a test: they read the
// same time, which the test moves.
type sharedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sharedClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *sharedClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openNodesAt opens n stores on one fresh migrated database, all on clock.
func openNodesAt(t *testing.T, n int, clock *sharedClock) []*DB {
	t.Helper()
	dsn := pgtest.DatabaseFrom(t, "migrated", func(ctx context.Context, dsn string) error {
		db, err := Open(ctx, dsn, Options{})
		if err != nil {
			return err
		}
		return db.Close()
	})
	dbs := make([]*DB, n)
	for i := range dbs {
		db, err := Open(context.Background(), dsn, Options{MaxConns: 4, Now: clock.now})
		if err != nil {
			t.Fatalf("open store %d: %v", i, err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	return dbs
}

// exportOf creates an export job of a new subscription of customer with n
// failed events, one second after the last.
func exportOf(t *testing.T, db *DB, clock *sharedClock, customer uuid.UUID, n int) store.ExportJob {
	t.Helper()
	s := newRowSub(t, db, customer)
	s.addFailedRows(t, db, n, db.Now(), db.Now())
	j, err := db.CreateExport(customer, s.id, "", store.ScopeSubscription, 0)
	if err != nil {
		t.Fatal(err)
	}
	clock.add(time.Second)
	return j
}

func nextOf(t *testing.T, c *ExportClaims) (store.ExportJob, bool) {
	t.Helper()
	j, ok, err := c.NextExport(testLease)
	if err != nil {
		t.Fatal(err)
	}
	return j, ok
}

// TestExportQueueFairOverNodes: the fair order of the single process holds
// over two nodes taking turns: A has three jobs, B and C one each, created
// in the order A1 A2 A3 B1 C1; claimed alternately by two nodes they go A1
// B1 C1 A2 A3, each to one node, and a claimed job is not handed out
// again. A job waiting for its retry time is not handed out before it. A
// customer whose jobs all ended and that comes back joins the end of the
// round.
func TestExportQueueFairOverNodes(t *testing.T) {
	clock := &sharedClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	dbs := openNodesAt(t, 2, clock)
	nodes := []*ExportClaims{dbs[0].ExportClaims(uuid.New()), dbs[1].ExportClaims(uuid.New())}
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	jobs := []store.ExportJob{exportOf(t, dbs[0], clock, a, 2), exportOf(t, dbs[0], clock, a, 2), exportOf(t, dbs[1], clock, a, 2),
		exportOf(t, dbs[1], clock, b, 2), exportOf(t, dbs[0], clock, c, 2)}
	var got []uuid.UUID
	for i := range 5 {
		j, ok := nextOf(t, nodes[i%2])
		if !ok {
			t.Fatalf("claim %d: no job, want one", i)
		}
		got = append(got, j.ID)
	}
	if want := []uuid.UUID{jobs[0].ID, jobs[3].ID, jobs[4].ID, jobs[1].ID, jobs[2].ID}; !slices.Equal(got, want) {
		t.Fatalf("claimed %v, want A1 B1 C1 A2 A3 %v", got, want)
	}
	for i, n := range nodes {
		if j, ok := nextOf(t, n); ok {
			t.Fatalf("node %d claimed %s again while its claim holds", i, j.ID)
		}
	}

	// B's job fails on the blob store and waits a minute for its retry.
	if _, err := nodes[1].BeginExportWrite(jobs[3].ID, "b1"); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].RetryExport(jobs[3].ID, clock.now().Add(time.Minute), "blob store down"); err != nil {
		t.Fatal(err)
	}
	if j, ok := nextOf(t, nodes[0]); ok {
		t.Fatalf("claimed %s before its retry time", j.ID)
	}
	clock.add(time.Minute)
	if j, ok := nextOf(t, nodes[0]); !ok || j.ID != jobs[3].ID {
		t.Fatalf("at its retry time: got %s %v, want B's job", j.ID, ok)
	}

	// All the jobs end. A starts two new ones and B one; once A's first
	// is claimed, C comes back: it joins with the current turn, A's, so
	// it goes after A's second job, though A was served in this round.
	holders := map[uuid.UUID]*ExportClaims{jobs[0].ID: nodes[0], jobs[3].ID: nodes[0], jobs[4].ID: nodes[0],
		jobs[1].ID: nodes[1], jobs[2].ID: nodes[0]}
	for id, n := range holders {
		if _, err := n.FailExport(id, store.FailureInternal, "test"); err != nil {
			t.Fatalf("end job %s: %v", id, err)
		}
	}
	a2, a3 := exportOf(t, dbs[0], clock, a, 1), exportOf(t, dbs[0], clock, a, 1)
	b2 := exportOf(t, dbs[1], clock, b, 1)
	got = got[:0]
	var c2 store.ExportJob
	for i := range 4 {
		j, ok := nextOf(t, nodes[i%2])
		if !ok {
			t.Fatalf("second round, claim %d: no job", i)
		}
		got = append(got, j.ID)
		if i == 0 {
			c2 = exportOf(t, dbs[1], clock, c, 1)
		}
	}
	if want := []uuid.UUID{a2.ID, b2.ID, a3.ID, c2.ID}; !slices.Equal(got, want) {
		t.Errorf("second round: got %v, want A1 B1 A2 C1 %v", got, want)
	}
}

// TestExportClaimLease: a claim holds for its lease, and longer when
// renewed; once it ran out, a job left writing is taken over by another
// node, after which the first node's changes are refused and change
// nothing (its completion marks no event exported), while the new
// holder's go through.
func TestExportClaimLease(t *testing.T) {
	clock := &sharedClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	dbs := openNodesAt(t, 2, clock)
	one, two := dbs[0].ExportClaims(uuid.New()), dbs[1].ExportClaims(uuid.New())
	job := exportOf(t, dbs[0], clock, uuid.New(), 3)

	j, ok := nextOf(t, one)
	if !ok || j.ID != job.ID {
		t.Fatalf("got %s %v, want the job", j.ID, ok)
	}
	if _, err := one.BeginExportWrite(job.ID, "k"); err != nil {
		t.Fatal(err)
	}
	clock.add(testLease * 2 / 3)
	if held, err := one.RenewExport(job.ID, testLease); err != nil || !held {
		t.Fatalf("renew within the lease: %v, %v; want held", held, err)
	}
	clock.add(testLease * 2 / 3) // past the first lease, within the renewed one
	if j, ok, err := two.AbandonedExport(testLease); err != nil || ok {
		t.Fatalf("while the renewed claim holds: took over %s (%v, %v), want nothing", j.ID, ok, err)
	}
	clock.add(testLease / 2) // the renewed lease ran out: the node died
	taken, ok, err := two.AbandonedExport(testLease)
	if err != nil || !ok || taken.ID != job.ID || taken.State != store.ExportWriting {
		t.Fatalf("after the lease: got %+v, %v, %v; want the job, writing", taken, ok, err)
	}

	if held, err := one.RenewExport(job.ID, testLease); err != nil || held {
		t.Fatalf("renew of the lost claim: %v, %v; want not held", held, err)
	}
	if _, err := one.CompleteExport(job.ID, store.ExportResult{Key: "k", EventCount: 3}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("completion by the node that lost the claim: got %v, want ErrConflict", err)
	}
	if st := statsOf(t, dbs[0], job.SubscriptionID); st.Watermark != 0 {
		t.Fatalf("the refused completion moved the watermark to %d", st.Watermark)
	}
	if n := rowsOf(t, dbs[0], "export_ranges", job.SubscriptionID); n != 0 {
		t.Fatalf("the refused completion wrote %d export ranges", n)
	}
	if _, err := one.FailExport(job.ID, store.FailureInternal, "x"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("failure by the node that lost the claim: got %v, want ErrConflict", err)
	}

	// The new holder puts it back, claims it again in the queue, writes
	// and completes it.
	if j, err := two.ResumeExport(job.ID); err != nil || j.State != store.ExportProcessing {
		t.Fatalf("resume: %v, %v", j.State, err)
	}
	if _, err := two.BeginExportWrite(job.ID, "k"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write after the claim ended with the resume: got %v, want ErrConflict", err)
	}
	j, ok = nextOf(t, two)
	if !ok || j.ID != job.ID {
		t.Fatalf("the resumed job: got %s %v, want it claimed again", j.ID, ok)
	}
	if _, err := two.BeginExportWrite(job.ID, "k"); err != nil {
		t.Fatal(err)
	}
	done, err := two.CompleteExport(job.ID, store.ExportResult{Key: "k", EventCount: 3})
	if err != nil || done.State != store.ExportCompleted || done.Attempts != 2 {
		t.Fatalf("completion by the holder: %+v, %v; want completed after 2 attempts", done, err)
	}
	if st := statsOf(t, dbs[0], job.SubscriptionID); st.Watermark != job.ToSeq {
		t.Errorf("watermark %d after the completion, want %d", st.Watermark, job.ToSeq)
	}
	if held, err := two.RenewExport(job.ID, testLease); err != nil || held {
		t.Errorf("renew of a completed job: %v, %v; want not held", held, err)
	}
}

// TestExportClaimOfProcessingJobLapses: a job claimed but never begun (its
// node died before) waits for its lease and is then handed to another node.
func TestExportClaimOfProcessingJobLapses(t *testing.T) {
	clock := &sharedClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	dbs := openNodesAt(t, 2, clock)
	one, two := dbs[0].ExportClaims(uuid.New()), dbs[1].ExportClaims(uuid.New())
	job := exportOf(t, dbs[0], clock, uuid.New(), 1)
	if _, ok := nextOf(t, one); !ok {
		t.Fatal("no job")
	}
	if j, ok := nextOf(t, two); ok {
		t.Fatalf("claimed job %s handed out again within its lease", j.ID)
	}
	clock.add(testLease)
	if j, ok := nextOf(t, two); !ok || j.ID != job.ID {
		t.Fatalf("after the lease: got %s %v, want the job", j.ID, ok)
	}
	if _, err := one.BeginExportWrite(job.ID, "k"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write by the node whose claim lapsed: got %v, want ErrConflict", err)
	}
}

// TestExportClaimsConcurrent: three nodes, four claimers each, claim 30
// jobs at once: each job is handed out exactly once.
func TestExportClaimsConcurrent(t *testing.T) {
	clock := &sharedClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	dbs := openNodesAt(t, 3, clock)
	want := map[uuid.UUID]bool{}
	for i := range 30 {
		want[exportOf(t, dbs[0], clock, uuid.New(), 1+i%2).ID] = true
	}
	var mu sync.Mutex
	got := map[uuid.UUID]int{}
	var wg sync.WaitGroup
	for _, db := range dbs {
		c := db.ExportClaims(uuid.New())
		for range 4 {
			wg.Go(func() {
				for {
					j, ok, err := c.NextExport(testLease)
					if err != nil {
						t.Error(err)
						return
					}
					if !ok {
						return
					}
					mu.Lock()
					got[j.ID]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(got) != len(want) {
		t.Errorf("claimed %d jobs, want %d", len(got), len(want))
	}
	for id, n := range got {
		if n != 1 || !want[id] {
			t.Errorf("job %s claimed %d times (known %v), want once", id, n, want[id])
		}
	}
}
