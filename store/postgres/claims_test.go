package postgres

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// claimNow runs one claim of c in its own transaction.
func claimNow(t *testing.T, c *Claims, sub uuid.UUID, now time.Time, limit int) ([]uint64, time.Time) {
	t.Helper()
	var seqs []uint64
	var next time.Time
	err := c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		seqs, next, err = c.claim(ctx, tx, sub, now, limit, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return seqs, next
}

// liveNode records a live node (its heartbeat now) and returns its id.
func liveNode(t *testing.T, db *DB) uuid.UUID {
	t.Helper()
	id := uuid.New()
	if _, err := db.pool.Exec(context.Background(), `INSERT INTO nodes VALUES ($1, 'n', now(), now())`, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// dueSeqs writes n events of sub due a second apart from start, and
// returns their sequence numbers in due order.
func dueSeqs(t *testing.T, db *DB, sub uuid.UUID, start time.Time, n int) []uint64 {
	t.Helper()
	for i := range n {
		insertDue(t, db, start.Add(time.Duration(i)*time.Second), sub)
	}
	rows, err := db.pool.Query(context.Background(), `SELECT seq FROM events WHERE subscription_id = $1 ORDER BY due_at`, sub)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (uint64, error) {
		var s int64
		err := r.Scan(&s)
		return uint64(s), err
	})
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// TestClaimsShareDueEvents: two nodes claiming one subscription's due
// events get disjoint ones, oldest first; what is claimed is nobody
// else's until the claim expires or the event's due time moves.
func TestClaimsShareDueEvents(t *testing.T) {
	dbs := openShared(t, 2)
	a := dbs[0].Claims(ClaimOptions{Node: liveNode(t, dbs[0]), Lease: 30 * time.Second})
	b := dbs[1].Claims(ClaimOptions{Node: liveNode(t, dbs[0]), Lease: time.Minute})
	sub := uuid.New()
	now := dbs[0].Now()
	all := dueSeqs(t, dbs[0], sub, now.Add(-10*time.Second), 5)

	got, next := claimNow(t, a, sub, now, 3)
	if !slices.Equal(got, all[:3]) || !next.Equal(now.Add(-7*time.Second)) {
		t.Fatalf("node a: got %v next %v, want %v and the fourth's due time", got, next, all[:3])
	}
	got, next = claimNow(t, b, sub, now, 3)
	if !slices.Equal(got, all[3:]) || !next.IsZero() {
		t.Fatalf("node b: got %v next %v, want %v and nothing left", got, next, all[3:])
	}
	if got, _ := claimNow(t, a, sub, now, 3); len(got) != 0 {
		t.Fatalf("node a again: got %v, want nothing (all claimed)", got)
	}
	// An outcome recorded moves the due time (a retry): the claim ends.
	if _, err := dbs[0].pool.Exec(context.Background(), `UPDATE events SET due_at = $3 WHERE subscription_id = $1 AND seq = $2`,
		sub, int64(all[0]), now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, _ := claimNow(t, b, sub, now.Add(2*time.Second), 5); !slices.Equal(got, all[:1]) {
		t.Fatalf("after a retry was scheduled: got %v, want %v", got, all[:1])
	}
	// A node that stopped recording outcomes holds its claims until
	// they expire.
	if got, _ := claimNow(t, b, sub, now.Add(31*time.Second), 5); !slices.Equal(got, all[1:3]) {
		t.Fatalf("after a's lease: got %v, want a's other claims %v", got, all[1:3])
	}
}

// TestClaimsOfDeadNodes: the claims of a node no longer live (its
// heartbeat older than NodeLease, or its row gone) are free at once,
// before their lease runs out.
func TestClaimsOfDeadNodes(t *testing.T) {
	db := openShared(t, 1)[0]
	ctx := context.Background()
	a, b := liveNode(t, db), liveNode(t, db)
	ca, cb := db.Claims(ClaimOptions{Node: a}), db.Claims(ClaimOptions{Node: b})
	sub, gone := uuid.New(), uuid.New()
	now := db.Now()
	all := dueSeqs(t, db, sub, now.Add(-time.Minute), 2)
	if got, _ := claimNow(t, ca, sub, now, 2); !slices.Equal(got, all) {
		t.Fatalf("node a: got %v, want %v", got, all)
	}
	if got, _ := claimNow(t, cb, sub, now, 2); len(got) != 0 {
		t.Fatalf("node b while a lives: got %v, want nothing", got)
	}
	if _, err := db.pool.Exec(ctx, `UPDATE nodes SET seen_at = now() - $2::interval WHERE id = $1`, a, NodeLease+time.Second); err != nil {
		t.Fatal(err)
	}
	if got, _ := claimNow(t, cb, sub, now, 2); !slices.Equal(got, all) {
		t.Fatalf("node b once a is not live: got %v, want %v", got, all)
	}
	goneSeqs := dueSeqs(t, db, gone, now.Add(-time.Minute), 1)
	if got, _ := claimNow(t, cb, gone, now, 1); !slices.Equal(got, goneSeqs) {
		t.Fatalf("node b: got %v, want %v", got, goneSeqs)
	}
	if _, err := db.pool.Exec(ctx, `DELETE FROM nodes WHERE id = $1`, b); err != nil {
		t.Fatal(err)
	}
	if got, _ := claimNow(t, ca, gone, now, 1); !slices.Equal(got, goneSeqs) {
		t.Fatalf("node a once b left: got %v, want %v", got, goneSeqs)
	}
}

// TestClaimsMaxPerEndpoint: the bound on a subscription's attempts holds
// over all nodes; a node held back is told to look again soon.
func TestClaimsMaxPerEndpoint(t *testing.T) {
	dbs := openShared(t, 2)
	a := dbs[0].Claims(ClaimOptions{Node: liveNode(t, dbs[0]), MaxPerEndpoint: 4})
	b := dbs[1].Claims(ClaimOptions{Node: liveNode(t, dbs[0]), MaxPerEndpoint: 4})
	sub := uuid.New()
	now := dbs[0].Now()
	all := dueSeqs(t, dbs[0], sub, now.Add(-10*time.Second), 6)
	if got, _ := claimNow(t, a, sub, now, 3); !slices.Equal(got, all[:3]) {
		t.Fatalf("node a: got %v, want %v", got, all[:3])
	}
	got, next := claimNow(t, b, sub, now, 10)
	if !slices.Equal(got, all[3:4]) || !next.Equal(now.Add(claimRetry)) {
		t.Fatalf("node b: got %v next %v, want %v (one left of 4) and a look again in %v", got, next, all[3:4], claimRetry)
	}
	got, next = claimNow(t, b, sub, now, 3) // its own bound: 4, one in flight
	if len(got) != 0 || !next.Equal(now.Add(claimRetry)) {
		t.Fatalf("node b at the bound: got %v next %v, want nothing and a look again in %v", got, next, claimRetry)
	}
}

// TestClaimsConcurrent: nodes claiming at once never claim one event
// twice, and together claim every due event.
func TestClaimsConcurrent(t *testing.T) {
	dbs := openShared(t, 3)
	sub := uuid.New()
	now := dbs[0].Now()
	all := dueSeqs(t, dbs[0], sub, now.Add(-time.Minute), 40)
	var mu sync.Mutex
	seen := map[uint64]int{}
	var wg sync.WaitGroup
	for _, db := range dbs {
		c := db.Claims(ClaimOptions{Node: liveNode(t, db)})
		wg.Go(func() {
			for {
				var got []uint64
				err := c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
					var err error
					got, _, err = c.claim(ctx, tx, sub, now, 3, nil)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, s := range got {
					seen[s]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, s := range all {
		if seen[s] != 1 {
			t.Errorf("event %d claimed %d times, want once", s, seen[s])
		}
	}
}
