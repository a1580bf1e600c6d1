package postgres

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// claimNow runs one claim of c in its own transaction.
func claimNow(t *testing.T, c *Claims, sub uuid.UUID, now time.Time, limit int) ([]uint64, time.Time) {
	t.Helper()
	var seqs []uint64
	var next time.Time
	err := c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		evs, n, err := c.claim(ctx, tx, sub, now, limit, nil)
		for _, e := range evs {
			seqs = append(seqs, e.Seq)
		}
		next = n
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
					evs, _, err := c.claim(ctx, tx, sub, now, 3, nil)
					for _, e := range evs {
						got = append(got, e.Seq)
					}
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

// soloMember joins db as a node with claims whose heartbeat the test
// drives (Member.beat): its own ticker would not fire within a test.
func soloMember(t testing.TB, db *DB, maxPer int) (*Member, *Claims) {
	t.Helper()
	id := uuid.New()
	c := db.Claims(ClaimOptions{Node: id, MaxPerEndpoint: maxPer})
	m, err := db.Join(context.Background(), MemberOptions{ID: id, Name: id.String()[:8], Heartbeat: NodeLease - time.Second, Claims: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, c
}

// claimedBy returns the node that claimed each of sub's events (the nil
// UUID for none), by sequence number.
func claimedBy(t *testing.T, db *DB, sub uuid.UUID) map[uint64]uuid.UUID {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `SELECT seq, coalesce(claimed_by, '00000000-0000-0000-0000-000000000000') FROM events WHERE subscription_id = $1`, sub)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]uuid.UUID{}
	for rows.Next() {
		var seq int64
		var node uuid.UUID
		if err := rows.Scan(&seq, &node); err != nil {
			t.Fatal(err)
		}
		out[uint64(seq)] = node
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func seqsOf(evs []store.Event) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func mustBeat(t *testing.T, m *Member) {
	t.Helper()
	if err := m.beat(); err != nil {
		t.Fatal(err)
	}
}

// TestSoloHandOver: a node alone reads its due events without claiming
// them; a node that joins claims nothing while the first may still be
// attempting what it handed out unclaimed; the first claims from its next
// heartbeat on and lets the newcomer claim once those attempts' outcomes
// are recorded; neither claims what the other holds.
func TestSoloHandOver(t *testing.T) {
	dbs := openShared(t, 2)
	sub := uuid.New()
	now := dbs[0].Now()
	all := dueSeqs(t, dbs[0], sub, now.Add(-time.Minute), 8)

	ma, a := soloMember(t, dbs[0], 0)
	if a.Solo() {
		t.Fatal("solo before a heartbeat, want claims until the node has counted the live nodes")
	}
	evs, _, err := a.DueEvents(sub, now, 1, nil)
	if err != nil || !slices.Equal(seqsOf(evs), all[:1]) || claimedBy(t, dbs[0], sub)[all[0]] != a.o.Node {
		t.Fatalf("a before its first beat: got %v, %v; want %v claimed by a", seqsOf(evs), err, all[:1])
	}
	mustBeat(t, ma)
	if !a.Solo() {
		t.Fatal("a alone after a heartbeat: not solo")
	}
	evs, _, err = a.DueEvents(sub, now, 2, nil)
	if err != nil || !slices.Equal(seqsOf(evs), all[1:3]) {
		t.Fatalf("a solo: got %v, %v; want %v (the one it claimed passed over)", seqsOf(evs), err, all[1:3])
	}
	if by := claimedBy(t, dbs[0], sub); by[all[1]] != uuid.Nil || by[all[2]] != uuid.Nil {
		t.Fatalf("a solo claimed %v, want no claim written", by)
	}

	mb, b := soloMember(t, dbs[1], 0)
	evs, next, err := b.DueEvents(sub, now, 10, nil)
	if err != nil || len(evs) != 0 || !next.Equal(now.Add(soloRetry)) {
		t.Fatalf("b while a is solo: got %v next %v, %v; want nothing and a look again in %v", seqsOf(evs), next, err, soloRetry)
	}
	mustBeat(t, mb) // two live: b does not go solo
	mustBeat(t, ma) // a ends solo, but what it handed out is still out
	if a.Solo() || b.Solo() {
		t.Fatalf("solo with two live nodes: a %v, b %v", a.Solo(), b.Solo())
	}
	if evs, _, _ := b.DueEvents(sub, now, 10, nil); len(evs) != 0 {
		t.Fatalf("b while a's unclaimed attempts are out: got %v, want nothing", seqsOf(evs))
	}
	out := map[uint64]bool{all[1]: true, all[2]: true}
	evs, _, err = a.DueEvents(sub, now, 2, func(s uint64) bool { return out[s] })
	if err != nil || !slices.Equal(seqsOf(evs), all[3:5]) || claimedBy(t, dbs[0], sub)[all[3]] != a.o.Node {
		t.Fatalf("a no longer solo: got %v, %v; want %v claimed", seqsOf(evs), err, all[3:5])
	}
	// The outcomes of the unclaimed attempts are recorded: at a's next
	// heartbeat b may claim, and gets neither a's claims nor those
	// events (recorded: no longer due, here by moving their due time).
	if _, err := dbs[0].pool.Exec(context.Background(), `UPDATE events SET due_at = NULL WHERE subscription_id = $1 AND seq = ANY($2)`,
		sub, []int64{int64(all[1]), int64(all[2])}); err != nil {
		t.Fatal(err)
	}
	a.Recorded([]store.AttemptResult{{SubscriptionID: sub, Seq: all[1]}, {SubscriptionID: sub, Seq: all[2]}})
	mustBeat(t, ma)
	evs, _, err = b.DueEvents(sub, now, 10, nil)
	if err != nil || !slices.Equal(seqsOf(evs), all[5:]) {
		t.Fatalf("b once a's attempts are recorded: got %v, %v; want %v", seqsOf(evs), err, all[5:])
	}
}

// TestSoloOfDeadNode: a solo node that is no longer live holds nobody
// back: the others claim at once, the events it handed out included (at
// least once).
func TestSoloOfDeadNode(t *testing.T) {
	dbs := openShared(t, 2)
	sub := uuid.New()
	now := dbs[0].Now()
	all := dueSeqs(t, dbs[0], sub, now.Add(-time.Minute), 3)
	ma, a := soloMember(t, dbs[0], 0)
	mustBeat(t, ma)
	if evs, _, err := a.DueEvents(sub, now, 2, nil); err != nil || len(evs) != 2 {
		t.Fatalf("a solo: got %v, %v; want 2 events", seqsOf(evs), err)
	}
	_, b := soloMember(t, dbs[1], 0)
	if _, err := dbs[0].pool.Exec(context.Background(), `UPDATE nodes SET seen_at = now() - $2::interval WHERE id = $1`, a.o.Node, NodeLease+time.Second); err != nil {
		t.Fatal(err)
	}
	evs, _, err := b.DueEvents(sub, now, 10, nil)
	if err != nil || !slices.Equal(seqsOf(evs), all) {
		t.Fatalf("b once a is not live: got %v, %v; want %v", seqsOf(evs), err, all)
	}
	// a, with its heartbeat late, no longer reads without claims even
	// before it learns of b, and b's claims hold against it.
	if evs, _, err := a.DueEvents(sub, now, 10, nil); err != nil || len(evs) != 0 {
		t.Fatalf("a late: got %v, %v; want nothing (b claimed all)", seqsOf(evs), err)
	}
}

// TestSoloLostOutcome: an event a solo node handed out whose outcome never
// comes (lost) holds the others back for a lease at most.
func TestSoloLostOutcome(t *testing.T) {
	dbs := openShared(t, 2)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	dbs[0].now = func() time.Time { return time.Unix(0, clock.Load()) }
	sub := uuid.New()
	now := dbs[0].Now()
	all := dueSeqs(t, dbs[0], sub, now.Add(-time.Minute), 2)
	ma, a := soloMember(t, dbs[0], 0)
	mustBeat(t, ma)
	if evs, _, err := a.DueEvents(sub, now, 1, nil); err != nil || !slices.Equal(seqsOf(evs), all[:1]) {
		t.Fatalf("a solo: got %v, %v; want %v", seqsOf(evs), err, all[:1])
	}
	_, b := soloMember(t, dbs[1], 0)
	mustBeat(t, ma)
	clock.Add(int64(a.o.Lease - time.Second))
	mustBeat(t, ma)
	if evs, _, _ := b.DueEvents(sub, dbs[1].Now(), 10, nil); len(evs) != 0 {
		t.Fatalf("b within a's lease of the event handed out: got %v, want nothing", seqsOf(evs))
	}
	clock.Add(int64(2 * time.Second))
	mustBeat(t, ma)
	if evs, _, err := b.DueEvents(sub, dbs[1].Now(), 10, nil); err != nil || !slices.Equal(seqsOf(evs), all) {
		t.Fatalf("b a lease after: got %v, %v; want %v", seqsOf(evs), err, all)
	}
}

// TestClaimCommitsWithoutFlush: a claim's transaction does not wait for
// its flush to disk (a lost claim costs at most an attempt made twice);
// the store's other transactions still do. It counts the live claims
// without bitmap scans.
func TestClaimCommitsWithoutFlush(t *testing.T) {
	db := openShared(t, 1)[0]
	c := db.Claims(ClaimOptions{Node: liveNode(t, db), MaxPerEndpoint: 4})
	sub := uuid.New()
	dueSeqs(t, db, sub, db.Now().Add(-time.Minute), 1)
	var inClaim, outside, bitmap string
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if _, _, err := c.claim(ctx, tx, sub, db.Now(), 1, nil); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT current_setting('synchronous_commit'), current_setting('enable_bitmapscan')`).Scan(&inClaim, &bitmap)
	})
	if err != nil {
		t.Fatal(err)
	}
	if bitmap != "off" {
		t.Errorf("enable_bitmapscan in a claim: %q, want off (the count of live claims by a plain index scan)", bitmap)
	}
	if err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&outside)
	}); err != nil {
		t.Fatal(err)
	}
	if inClaim != "off" || outside != "on" {
		t.Errorf("synchronous_commit: %q in a claim, %q outside; want off and on", inClaim, outside)
	}
}
