package postgres

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// newSubs writes n subscriptions (rows only) and returns their ids.
func newSubs(t testing.TB, db *DB, n int) []uuid.UUID {
	t.Helper()
	var subs []uuid.UUID
	for range n {
		sub := uuid.New()
		if _, err := db.pool.Exec(context.Background(), `INSERT INTO subscriptions (id, customer_id, title, endpoint, enabled, created_at, updated_at)
VALUES ($1, $2, $3, 'https://example.com', true, now(), now())`, sub, uuid.New(), sub.String()); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	return subs
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

// laneMember joins db as a node with claims whose heartbeat the test
// drives (Member.beat): its own ticker does not fire within a test. The
// lanes its heartbeats wake are counted by r.
func laneMember(t testing.TB, db *DB, r *recorder) (*Member, *Claims) {
	t.Helper()
	id := uuid.New()
	c := db.Claims(ClaimOptions{Node: id})
	o := MemberOptions{ID: id, Name: id.String()[:8], Heartbeat: NodeLease - time.Second, Claims: c}
	if r != nil {
		o.Due = r.options("").Due
	}
	m, err := db.Join(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, c
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

// laneHolders returns the node holding each subscription's lane.
func laneHolders(t *testing.T, db *DB) map[uuid.UUID]uuid.UUID {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `SELECT subscription_id, node_id FROM lane_claims`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uuid.UUID]uuid.UUID{}
	for rows.Next() {
		var sub, node uuid.UUID
		if err := rows.Scan(&sub, &node); err != nil {
			t.Fatal(err)
		}
		out[sub] = node
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// setSeen moves node's last heartbeat to ago before now.
func setSeen(t *testing.T, db *DB, node uuid.UUID, ago time.Duration) {
	t.Helper()
	if _, err := db.pool.Exec(context.Background(), `UPDATE nodes SET seen_at = now() - $2::interval WHERE id = $1`, node, ago); err != nil {
		t.Fatal(err)
	}
}

// TestShareOf: the lanes over the live nodes, one more for the first by
// id when they do not divide evenly, none for a node not live.
func TestShareOf(t *testing.T) {
	ids := sortedIDs([]uuid.UUID{uuid.New(), uuid.New(), uuid.New()})
	live := []uuid.UUID{ids[2], ids[0], ids[1]} // any order
	for _, tc := range []struct {
		total int
		want  []int
	}{{0, []int{0, 0, 0}}, {1, []int{1, 0, 0}}, {4, []int{2, 1, 1}}, {6, []int{2, 2, 2}}, {8, []int{3, 3, 2}}} {
		var got []int
		sum := 0
		for _, id := range ids {
			got = append(got, shareOf(id, live, tc.total))
			sum += got[len(got)-1]
		}
		if !slices.Equal(got, tc.want) || sum != tc.total {
			t.Errorf("%d lanes over 3 nodes: got shares %v, want %v", tc.total, got, tc.want)
		}
	}
	if got := shareOf(uuid.New(), live, 6); got != 0 {
		t.Errorf("a node not live: got a share of %d, want 0", got)
	}
}

// TestLanesSharedOut: three nodes' heartbeats share seven subscriptions
// out as 3, 2 and 2, each held by one node; a subscription's due events
// are read by the node holding its lane alone, and the lanes a heartbeat
// takes are woken.
func TestLanesSharedOut(t *testing.T) {
	dbs := openShared(t, 3)
	subs := newSubs(t, dbs[0], 7)
	now := dbs[0].Now()
	for _, sub := range subs {
		insertDue(t, dbs[0], now.Add(-time.Minute), sub)
	}
	var (
		members []*Member
		claims  []*Claims
		recs    []*recorder
	)
	for _, db := range dbs {
		r := newRecorder()
		m, c := laneMember(t, db, r)
		members, claims, recs = append(members, m), append(claims, c), append(recs, r)
	}
	for range 2 {
		for _, m := range members {
			mustBeat(t, m)
		}
	}
	holders := laneHolders(t, dbs[0])
	if len(holders) != len(subs) {
		t.Fatalf("got %d lanes held, want all %d", len(holders), len(subs))
	}
	ids := []uuid.UUID{members[0].ID(), members[1].ID(), members[2].ID()}
	for i, c := range claims {
		held := c.Held()
		if want := shareOf(ids[i], ids, len(subs)); len(held) != want {
			t.Errorf("node %d holds %d lanes, want its share %d", i, len(held), want)
		}
		for _, sub := range held {
			if holders[sub] != ids[i] {
				t.Errorf("node %d thinks it holds %s, held by %s", i, sub, holders[sub])
			}
			if recs[i].dueOf(sub) != 1 {
				t.Errorf("node %d took %s at a heartbeat and woke it %d times, want once", i, sub, recs[i].dueOf(sub))
			}
		}
	}
	for _, sub := range subs {
		for i, c := range claims {
			evs, _, err := c.DueEvents(sub, now, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			if mine := holders[sub] == ids[i]; mine != (len(evs) == 1) {
				t.Errorf("node %d (holds %s: %v) read %d due events of it, want 1 for the holder and none for the others", i, sub, mine, len(evs))
			}
		}
	}
}

// TestLaneTakenOnDemand: a lane nobody holds is taken by the first node
// whose dispatcher reads its due events, with no heartbeat; with two
// nodes reading at once, each subscription's events go to one of them.
func TestLaneTakenOnDemand(t *testing.T) {
	dbs := openShared(t, 2)
	subs := newSubs(t, dbs[0], 20)
	now := dbs[0].Now()
	for _, sub := range subs {
		dueSeqs(t, dbs[0], sub, now.Add(-time.Minute), 3)
	}
	_, a := laneMember(t, dbs[0], nil)
	_, b := laneMember(t, dbs[1], nil)
	got := map[uuid.UUID][]int{} // events read, by subscription, by node
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, c := range []*Claims{a, b} {
		wg.Go(func() {
			for _, sub := range subs {
				evs, _, err := c.DueEvents(sub, now, 10, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if got[sub] == nil {
					got[sub] = make([]int, 2)
				}
				got[sub][i] += len(evs)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	holders := laneHolders(t, dbs[0])
	for _, sub := range subs {
		n := got[sub]
		if !(n[0] == 3 && n[1] == 0 && holders[sub] == a.o.Node) && !(n[0] == 0 && n[1] == 3 && holders[sub] == b.o.Node) {
			t.Errorf("subscription %s: a read %d and b %d of its 3 due events, held by %s; want all by its holder alone", sub, n[0], n[1], holders[sub])
		}
	}
}

// TestLaneHandOver: a node over its share hands a lane over only once the
// events it read from it have had their outcomes told; meanwhile it reads
// no more of them and the newcomer cannot take the lane; the newcomer's
// heartbeat then takes it, wakes it, and reads the rest.
func TestLaneHandOver(t *testing.T) {
	dbs := openShared(t, 2)
	subs := newSubs(t, dbs[0], 2)
	now := dbs[0].Now()
	seqs := map[uuid.UUID][]uint64{}
	for _, sub := range subs {
		seqs[sub] = dueSeqs(t, dbs[0], sub, now.Add(-time.Minute), 4)
	}
	ma, a := laneMember(t, dbs[0], nil)
	mustBeat(t, ma) // alone: both lanes are a's
	out := map[uuid.UUID][]store.Event{}
	for _, sub := range subs {
		evs, _, err := a.DueEvents(sub, now, 2, nil)
		if err != nil || len(evs) != 2 {
			t.Fatalf("a alone: read %v, %v; want 2 events", seqsOf(evs), err)
		}
		out[sub] = evs
	}

	rb := newRecorder()
	mb, b := laneMember(t, dbs[1], rb)
	mustBeat(t, ma) // two live: a's share is 1, one lane leaves
	mustBeat(t, mb) // b's share is 1, but a still holds both
	if held := a.Held(); len(held) != 2 || len(b.Held()) != 0 {
		t.Fatalf("before the hand-over: a holds %v, b %v; want both a's", held, b.Held())
	}
	var leaving uuid.UUID
	for _, sub := range subs {
		evs, _, err := a.DueEvents(sub, now, 10, func(s uint64) bool { return slices.Contains(seqsOf(out[sub]), s) })
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			leaving = sub
		}
		if evs, _, _ := b.DueEvents(sub, now, 10, nil); len(evs) != 0 {
			t.Fatalf("b read %v of %s while a holds it, want nothing", seqsOf(evs), sub)
		}
	}
	if leaving == uuid.Nil {
		t.Fatal("a over its share read from both lanes, want one of them leaving")
	}
	mustBeat(t, ma) // what a read of the leaving lane is still out
	if h := laneHolders(t, dbs[0]); h[leaving] != a.o.Node {
		t.Fatalf("the leaving lane handed over with events out: held by %s", h[leaving])
	}

	// The outcomes are recorded (here: no longer due) and told.
	var rs []store.AttemptResult
	for _, e := range out[leaving] {
		rs = append(rs, store.AttemptResult{SubscriptionID: leaving, Seq: e.Seq})
	}
	if _, err := dbs[0].pool.Exec(context.Background(), `UPDATE events SET due_at = NULL WHERE subscription_id = $1 AND seq = ANY($2)`,
		leaving, []int64{int64(out[leaving][0].Seq), int64(out[leaving][1].Seq)}); err != nil {
		t.Fatal(err)
	}
	a.Recorded(rs)
	mustBeat(t, ma) // hands it over
	mustBeat(t, mb) // takes it
	if h := laneHolders(t, dbs[0]); h[leaving] != b.o.Node {
		t.Fatalf("after the outcomes: the leaving lane held by %s, want b %s", h[leaving], b.o.Node)
	}
	if rb.dueOf(leaving) != 1 {
		t.Errorf("b took the lane and woke it %d times, want once", rb.dueOf(leaving))
	}
	evs, _, err := b.DueEvents(leaving, now, 10, nil)
	if want := seqs[leaving][2:]; err != nil || !slices.Equal(seqsOf(evs), want) {
		t.Errorf("b after the hand-over: read %v, %v; want the rest %v", seqsOf(evs), err, want)
	}
	if evs, _, _ := a.DueEvents(leaving, now, 10, nil); len(evs) != 0 {
		t.Errorf("a after handing the lane over read %v, want nothing", seqsOf(evs))
	}
}

// TestLaneOfDeadNode: the lanes of a node no longer live are taken by the
// others' heartbeats, with the events it had out (at least once); the
// dead node, should it still run, reads nothing more from them; and a
// node whose heartbeat is more than half a lease old stops reading before
// the others may take its lanes.
func TestLaneOfDeadNode(t *testing.T) {
	dbs := openShared(t, 2)
	sub := newSubs(t, dbs[0], 1)[0]
	now := dbs[0].Now()
	all := dueSeqs(t, dbs[0], sub, now.Add(-time.Minute), 3)
	ma, a := laneMember(t, dbs[0], nil)
	mustBeat(t, ma) // alone: the lane is a's
	mb, b := laneMember(t, dbs[1], nil)
	mustBeat(t, mb) // a holds it
	if evs, _, err := a.DueEvents(sub, now, 2, nil); err != nil || !slices.Equal(seqsOf(evs), all[:2]) {
		t.Fatalf("a: read %v, %v; want %v", seqsOf(evs), err, all[:2])
	}

	setSeen(t, dbs[0], a.o.Node, NodeLease/2+time.Second)
	if evs, _, err := a.DueEvents(sub, now, 10, nil); err != nil || len(evs) != 0 {
		t.Fatalf("a with a heartbeat half a lease old: read %v, %v; want nothing", seqsOf(evs), err)
	}
	mustBeat(t, mb)
	if h := laneHolders(t, dbs[0]); h[sub] != a.o.Node {
		t.Fatalf("a still live: its lane went to %s", h[sub])
	}

	setSeen(t, dbs[0], a.o.Node, NodeLease+time.Second)
	mustBeat(t, mb)
	if h := laneHolders(t, dbs[0]); h[sub] != b.o.Node {
		t.Fatalf("a dead: its lane held by %s, want b", h[sub])
	}
	if evs, _, err := b.DueEvents(sub, now, 10, nil); err != nil || !slices.Equal(seqsOf(evs), all) {
		t.Errorf("b after a died: read %v, %v; want all %v, those a had out included", seqsOf(evs), err, all)
	}
	if evs, _, _ := a.DueEvents(sub, now, 10, nil); len(evs) != 0 {
		t.Errorf("a after its lane was taken: read %v, want nothing", seqsOf(evs))
	}
	if held := a.Held(); len(held) != 0 {
		t.Errorf("a thinks it still holds %v", held)
	}
}

// TestLaneOfDeletedSubscription: a subscription's lane claim goes with it.
func TestLaneOfDeletedSubscription(t *testing.T) {
	db := openShared(t, 1)[0]
	sub := newSubs(t, db, 1)[0]
	m, _ := laneMember(t, db, nil)
	mustBeat(t, m)
	if h := laneHolders(t, db); h[sub] != m.ID() {
		t.Fatalf("the lane held by %s, want the node", h[sub])
	}
	if _, err := db.pool.Exec(context.Background(), `DELETE FROM subscriptions WHERE id = $1`, sub); err != nil {
		t.Fatal(err)
	}
	if h := laneHolders(t, db); len(h) != 0 {
		t.Errorf("after the deletion: got lane claims %v, want none", h)
	}
}

// TestLaneReadsFromItsFloor: a lane's read of the due order starts where
// nothing was due at its last read, so that the entries its delivered
// events leave in the due index are not walked again; an event written due
// below that floor (a transaction that committed late) is found by the
// read from the start that comes within dueFloorFullRead.
func TestLaneReadsFromItsFloor(t *testing.T) {
	db := openTest(t, nil)
	sub := newSubs(t, db, 1)[0]
	now := db.Now()
	seqs := dueSeqs(t, db, sub, now.Add(-time.Hour), 6)
	_, c := laneMember(t, db, nil)
	delivered := func(seqs ...uint64) {
		t.Helper()
		if _, err := db.pool.Exec(context.Background(), `UPDATE events SET due_at = NULL, state = $3 WHERE subscription_id = $1 AND seq = ANY($2)`,
			sub, int64s(seqs), int16(store.Success)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(at time.Time, want ...uint64) {
		t.Helper()
		evs, _, err := c.DueEvents(sub, at, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqsOf(evs); !slices.Equal(got, want) {
			t.Fatalf("read at %v: %v, want %v", at.Sub(now), got, want)
		}
		delivered(want...)
	}
	read(now, seqs[0], seqs[1])
	// Due two hours ago, below the floor (seqs[0]'s due time).
	insertDue(t, db, now.Add(-2*time.Hour), sub)
	late := dueSeqs(t, db, sub, now, 0)[0]
	read(now.Add(time.Second), seqs[2], seqs[3])
	read(now.Add(dueFloorFullRead), late, seqs[4])
	read(now.Add(dueFloorFullRead+time.Second), seqs[5])
}
