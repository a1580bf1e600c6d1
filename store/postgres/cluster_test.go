package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
	"hookd/store/pgtest"
)

// openShared opens n stores on one fresh migrated database: n nodes.
func openShared(t *testing.T, n int) []*DB {
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
		db, err := Open(context.Background(), dsn, Options{MaxConns: 4})
		if err != nil {
			t.Fatalf("open store %d: %v", i, err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	return dbs
}

// recorder keeps what a member's callbacks were called with.
type recorder struct {
	mu   sync.Mutex
	due  map[uuid.UUID]int
	keys map[uuid.UUID]int
	live []int
	errs []error
}

func newRecorder() *recorder {
	return &recorder{due: map[uuid.UUID]int{}, keys: map[uuid.UUID]int{}}
}

func (r *recorder) options(name string) MemberOptions {
	return MemberOptions{
		Name: name,
		Due: func(subs []uuid.UUID) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, s := range subs {
				r.due[s]++
			}
		},
		KeysChanged: func(c uuid.UUID) { r.mu.Lock(); r.keys[c]++; r.mu.Unlock() },
		LiveNodes:   func(n int) { r.mu.Lock(); r.live = append(r.live, n); r.mu.Unlock() },
		OnError:     func(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() },
	}
}

func (r *recorder) dueOf(id uuid.UUID) int { r.mu.Lock(); defer r.mu.Unlock(); return r.due[id] }
func (r *recorder) keysOf(id uuid.UUID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys[id]
}

// eventually polls cond for up to 10 seconds: notifications travel through
// the database server, whose delivery the test cannot step.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitListening returns once the listener hears every channel: it sends a
// probe on each until it arrives. (The listener handles notifications only
// after it listens on every channel and has resynchronised, so the first
// probe heard says both.)
func waitListening(t *testing.T, from *DB, r *recorder) {
	t.Helper()
	probe := uuid.New()
	for _, ch := range []string{channelDue, channelKeys} {
		eventually(t, "the listener on "+ch, func() bool {
			if _, err := from.pool.Exec(context.Background(), `SELECT pg_notify($1, $2)`, ch, probe.String()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			if ch == channelDue {
				return r.dueOf(probe) > 0
			}
			return r.keysOf(probe) > 0
		})
	}
}

// insertDue writes, in one statement, one due event for each of subs (as
// an intake's COPY does) with their counters' rows.
func insertDue(t testing.TB, db *DB, dueAt time.Time, subs ...uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	_, err := db.pool.Exec(ctx, `INSERT INTO events (subscription_id, seq, id, type, toe, payload, created_at, updated_at, state, due_at)
SELECT s, nextval('event_seq'), gen_random_uuid(), 'user.created', 0, '\x7b7d', now(), now(), $2, $3 FROM unnest($1::uuid[]) AS s`,
		subs, int16(store.AwaitingExecuting), dueAt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO sub_stats (subscription_id, waiting) SELECT s, 1 FROM unnest($1::uuid[]) AS s
ON CONFLICT (subscription_id) DO UPDATE SET waiting = sub_stats.waiting + 1`, subs); err != nil {
		t.Fatal(err)
	}
}

// TestMembersSeeEachOther: two nodes that join are both live, each with
// its name; the node that joins second counts two; a node that leaves is
// gone from the list at once.
func TestMembersSeeEachOther(t *testing.T) {
	dbs := openShared(t, 2)
	r1, r2 := newRecorder(), newRecorder()
	m1, err := dbs[0].Join(context.Background(), r1.options("one:8080"))
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	m2, err := dbs[1].Join(context.Background(), r2.options("two:8080"))
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := dbs[0].LiveNodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].ID != m1.ID() || nodes[0].Name != "one:8080" || nodes[1].ID != m2.ID() || nodes[1].Name != "two:8080" {
		t.Fatalf("got nodes %+v, want one:8080 (%s) then two:8080 (%s)", nodes, m1.ID(), m2.ID())
	}
	if nodes[1].StartedAt.Before(nodes[0].StartedAt) || nodes[0].SeenAt.Before(nodes[0].StartedAt) {
		t.Errorf("got times %+v, want started in join order and seen at or after the start", nodes)
	}
	r2.mu.Lock()
	if !slices.Equal(r2.live, []int{2}) {
		t.Errorf("second node's live counts: got %v, want [2]", r2.live)
	}
	r2.mu.Unlock()
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if nodes, err = dbs[0].LiveNodes(); err != nil || len(nodes) != 1 || nodes[0].ID != m1.ID() {
		t.Fatalf("after the second left: got %+v, %v; want the first alone", nodes, err)
	}
}

// TestHeartbeatLease: a node whose heartbeat stopped (its seen_at older
// than the lease) is not live; the next heartbeat of a node makes it live
// again and reports the changed count; a row gone for a day is deleted.
func TestHeartbeatLease(t *testing.T) {
	dbs := openShared(t, 1)
	db := dbs[0]
	ctx := context.Background()
	r := newRecorder()
	m, err := db.Join(ctx, r.options("n"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dead := uuid.New()
	if _, err := db.pool.Exec(ctx, `INSERT INTO nodes VALUES ($1, 'dead', now() - interval '2 days', now() - interval '25 hours')`, dead); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `UPDATE nodes SET seen_at = now() - $2::interval WHERE id = $1`, m.ID(), NodeLease+time.Second); err != nil {
		t.Fatal(err)
	}
	if nodes, err := db.LiveNodes(); err != nil || len(nodes) != 0 {
		t.Fatalf("with every heartbeat older than the lease: got %+v, %v; want no live node", nodes, err)
	}
	// The beat the loop makes every Heartbeat, made here at once.
	if err := m.beat(); err != nil {
		t.Fatal(err)
	}
	nodes, err := db.LiveNodes()
	if err != nil || len(nodes) != 1 || nodes[0].ID != m.ID() {
		t.Fatalf("after a heartbeat: got %+v, %v; want the node", nodes, err)
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE id = $1`, dead).Scan(&n); err != nil || n != 0 {
		t.Errorf("the row of a node gone for a day: %d rows, %v; want it deleted", n, err)
	}
	// A count that did not change is not reported again.
	if _, err := db.pool.Exec(ctx, `INSERT INTO nodes VALUES ($1, 'other', now(), now())`, uuid.New()); err != nil {
		t.Fatal(err)
	}
	if err := m.beat(); err != nil {
		t.Fatal(err)
	}
	if err := m.beat(); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Equal(r.live, []int{1, 2}) {
		t.Errorf("got live counts %v, want [1 2]", r.live)
	}
}

// TestHeartbeatLoop: the member's own loop keeps its seen_at moving, and
// Close stops it.
func TestHeartbeatLoop(t *testing.T) {
	db := openShared(t, 1)[0]
	ctx := context.Background()
	o := newRecorder().options("n")
	o.Heartbeat = 20 * time.Millisecond
	m, err := db.Join(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	seen := func() time.Time {
		var at time.Time
		if err := db.pool.QueryRow(ctx, `SELECT seen_at FROM nodes WHERE id = $1`, m.ID()).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	first := seen()
	eventually(t, "a heartbeat", func() bool { return seen().After(first) })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM nodes`).Scan(&n); err != nil || n != 0 {
		t.Errorf("after Close: %d rows, %v; want none", n, err)
	}
}

// TestJoinRefusesSlowHeartbeat: a heartbeat not shorter than the lease
// would make live nodes flicker; Join refuses it and records nothing.
func TestJoinRefusesSlowHeartbeat(t *testing.T) {
	db := openShared(t, 1)[0]
	if _, err := db.Join(context.Background(), MemberOptions{Name: "n", Heartbeat: NodeLease}); err == nil {
		t.Fatal("got no error, want the lease refused")
	}
	if nodes, err := db.LiveNodes(); err != nil || len(nodes) != 0 {
		t.Errorf("got %+v, %v; want no node", nodes, err)
	}
}

// TestNotifications: what one node writes reaches the other's callbacks:
// the subscriptions of new due events (many at once, over several
// notifications), a key rotation's customer, and a change of
// subscriptions, which moves the other's SubscriptionsVersion.
func TestNotifications(t *testing.T) {
	dbs := openShared(t, 2)
	writer, reader := dbs[0], dbs[1]
	r := newRecorder()
	m, err := reader.Join(context.Background(), r.options("reader"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitListening(t, writer, r)

	t.Run("due", func(t *testing.T) {
		subs := newSubs(t, writer, 250) // three notifications' worth
		var evs []store.NewEvent
		var ds []store.Delivery
		for i, s := range subs {
			evs = append(evs, store.NewEvent{Type: "entityCreated", Payload: []byte(`{}`)})
			ds = append(ds, store.Delivery{SubscriptionID: s, Event: i})
		}
		if _, err := writer.AddEvents(evs, ds); err != nil {
			t.Fatal(err)
		}
		eventually(t, "every subscription announced", func() bool {
			for _, s := range subs {
				if r.dueOf(s) == 0 {
					return false
				}
			}
			return true
		})
		// Events recorded without a due time (a disabled subscription's,
		// failed at once) announce nothing.
		now := writer.Now()
		quiet := uuid.New()
		if err := writer.CreateSubscription(store.Subscription{ID: quiet, CustomerID: uuid.New(), Title: "quiet", Endpoint: "https://example.com/q",
			CreatedAt: now, UpdatedAt: now}, 0); err != nil {
			t.Fatal(err)
		}
		if added, err := writer.AddEvents(evs[:1], []store.Delivery{{SubscriptionID: quiet}}); err != nil || len(added) != 1 || added[0].State != store.Failure {
			t.Fatalf("the disabled subscription's event: %+v, %v; want it recorded as a failure", added, err)
		}
		marker := newSubs(t, writer, 1)[0]
		if _, err := writer.AddEvents(evs[:1], []store.Delivery{{SubscriptionID: marker}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the marker", func() bool { return r.dueOf(marker) > 0 })
		if n := r.dueOf(quiet); n != 0 {
			t.Errorf("an event without a due time was announced %d times, want 0", n)
		}
	})

	t.Run("keys", func(t *testing.T) {
		customer := uuid.New()
		key := func(id string) store.StoredKey { return store.StoredKey{ID: id, DER: []byte(id)} }
		_, err := writer.CreateClient(customer, uuid.New(), []byte("hash"), func() (store.KeySet, error) {
			return store.KeySet{KeyTriple: store.KeyTriple{Previous: key("p"), Current: key("c"), Next: key("n")}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the new customer's keys", func() bool { return r.keysOf(customer) == 1 })
		if _, err := writer.RotateKeys(customer, []store.StoredKey{key("n2")}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the rotation", func() bool { return r.keysOf(customer) == 2 })
	})

	t.Run("subscriptions", func(t *testing.T) {
		before := reader.SubscriptionsVersion()
		now := writer.Now()
		s := store.Subscription{ID: uuid.New(), CustomerID: uuid.New(), Title: "t", Endpoint: "https://example.com/h", Enabled: true, CreatedAt: now, UpdatedAt: now}
		if err := writer.CreateSubscription(s, 10); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the reader's version moving", func() bool { return reader.SubscriptionsVersion() != before })
	})
}

// TestTryLock: one node at a time holds a named lock; the others are told
// so at once, and take it once it is released. Other names are apart.
func TestTryLock(t *testing.T) {
	dbs := openShared(t, 2)
	ctx := context.Background()
	unlock, ok, err := dbs[0].TryLock(ctx, "janitor")
	if err != nil || !ok {
		t.Fatalf("first: got %v, %v; want the lock", ok, err)
	}
	if _, ok, err := dbs[1].TryLock(ctx, "janitor"); err != nil || ok {
		t.Fatalf("second while held: got %v, %v; want it refused", ok, err)
	}
	other, ok, err := dbs[1].TryLock(ctx, "exports")
	if err != nil || !ok {
		t.Fatalf("another name: got %v, %v; want it", ok, err)
	}
	other()
	unlock()
	unlock2, ok, err := dbs[1].TryLock(ctx, "janitor")
	if err != nil || !ok {
		t.Fatalf("second after the release: got %v, %v; want the lock", ok, err)
	}
	unlock2()
}

// TestClusterStatus: the live nodes and the event due longest, leaving
// out events due later and deleted subscriptions.
func TestClusterStatus(t *testing.T) {
	db := openShared(t, 1)[0]
	ctx := context.Background()
	st, err := db.ClusterStatus()
	if err != nil || len(st.Nodes) != 0 || st.OldestDue != nil {
		t.Fatalf("empty: got %+v, %v; want nothing", st, err)
	}
	m, err := db.Join(ctx, MemberOptions{Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := db.Now()
	subs := newSubs(t, db, 3)
	a, b, later, deleted := subs[0], subs[1], subs[2], uuid.New()
	insertDue(t, db, now.Add(-time.Minute), a)
	insertDue(t, db, now.Add(-time.Hour), b)
	insertDue(t, db, now.Add(time.Hour), later)
	insertDue(t, db, now.Add(-2*time.Hour), deleted)
	if _, err := db.pool.Exec(ctx, `INSERT INTO tombstones VALUES ($1, $2)`, deleted, uuid.New()); err != nil {
		t.Fatal(err)
	}
	st, err = db.ClusterStatus()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].ID != m.ID() || st.Nodes[0].Claims != 0 {
		t.Errorf("got nodes %+v, want the one, holding no lane", st.Nodes)
	}
	checkOldest(t, db, st, b, now.Add(-time.Hour))

	// Once the node holds b's and a's lanes, it counts two claims; the
	// oldest due event is still b's (not yet attempted).
	c := db.Claims(ClaimOptions{Node: m.ID()})
	for _, sub := range []uuid.UUID{b, a} {
		if got, _, err := c.DueEvents(sub, now, 5, nil); err != nil || len(got) != 1 {
			t.Fatalf("read %v, %v; want the lane taken and its event", seqsOf(got), err)
		}
	}
	if st, err = db.ClusterStatus(); err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].Claims != 2 {
		t.Errorf("got nodes %+v, want the one with 2 claims", st.Nodes)
	}
	checkOldest(t, db, st, b, now.Add(-time.Hour))
}

// checkOldest checks that st's oldest due event is sub's, due at.
func checkOldest(t *testing.T, db *DB, st store.ClusterStatus, sub uuid.UUID, at time.Time) {
	t.Helper()
	var event uuid.UUID
	if err := db.pool.QueryRow(context.Background(), `SELECT id FROM events WHERE subscription_id = $1`, sub).Scan(&event); err != nil {
		t.Fatal(err)
	}
	want := store.DueRef{Subscription: sub, Event: event, DueAt: at}
	if r := st.OldestDue; r == nil || r.Subscription != want.Subscription || r.Event != want.Event || !r.DueAt.Equal(want.DueAt) {
		t.Errorf("got oldest due %s, want %+v", fmtRef(st.OldestDue), want)
	}
}

func fmtRef(r *store.DueRef) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("%+v", *r)
}
