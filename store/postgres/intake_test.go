package postgres

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
	"hookd/store/pgtest"
)

// openNodes opens two stores on one database, as two hookd nodes would,
// with a subscription to record events for.
func openNodes(t *testing.T) (a, b *DB, s store.Subscription) {
	t.Helper()
	dsn := pgtest.Database(t)
	for _, db := range []**DB{&a, &b} {
		var err error
		if *db, err = Open(context.Background(), dsn, Options{}); err != nil {
			t.Fatalf("open store: %v", err)
		}
		t.Cleanup(func() { (*db).Close() })
	}
	s = store.Subscription{ID: uuid.New(), CustomerID: uuid.New(), Title: "s", Endpoint: "https://listener.example/s",
		Events: []string{"entityCreated"}, Enabled: true, CreatedAt: a.Now(), UpdatedAt: a.Now()}
	if err := a.CreateSubscription(s, 0); err != nil {
		t.Fatal(err)
	}
	return a, b, s
}

// waitForLockWait waits until a transaction of the database waits for a
// lock another holds.
func waitForLockWait(t *testing.T, db *DB) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no transaction waits for a lock")
		}
	}
}

// TestIntakeAcrossNodes: a request on one node with the Idempotency-Key,
// or a sender's id, of a request another node is recording waits for that
// commit, then replays its answer (the id: finds it a duplicate).
func TestIntakeAcrossNodes(t *testing.T) {
	a, b, s := openNodes(t)
	// request is an intake of one event with the sender's id id, under key
	// (empty: none), answering answer.
	request := func(id uuid.UUID, key, answer string) store.Intake {
		return store.Intake{CustomerID: s.CustomerID, Key: key, RequestHash: sha256.Sum256([]byte("body")),
			Events:     []store.NewEvent{{ID: id, Type: "entityCreated", Payload: []byte(`{}`)}},
			Deliveries: []store.Delivery{{SubscriptionID: s.ID}},
			Answer:     func(store.IntakeResult) ([]byte, error) { return []byte(answer), nil }}
	}
	for _, tc := range []struct {
		name      string
		secondKey bool
		check     func(res store.IntakeResult) bool
	}{
		{"key", true, func(res store.IntakeResult) bool { return string(res.Replay) == "first" && len(res.Added) == 0 }},
		{"sender's id", false, func(res store.IntakeResult) bool { return len(res.Added) == 0 && len(res.Duplicates) == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, key := uuid.New(), uuid.NewString()
			first, second := request(id, key, "first"), request(id, "", "second")
			if tc.secondKey {
				second.Key = key
			}
			// The first request is recorded on node a and held before its
			// commit; the second goes to node b.
			release, claimed := make(chan struct{}), make(chan struct{})
			var releaseOnce, claimOnce sync.Once
			defer releaseOnce.Do(func() { close(release) }) // never leave the commit loop held
			firstDone := make(chan error, 1)
			go func() {
				firstDone <- a.group.do(func(g *groupTx) error {
					res, err := g.recordIntake(first, newIDClaim(first))
					if err == nil && len(res.Added) != 1 {
						t.Errorf("first request: got %+v, want 1 added", res)
					}
					claimOnce.Do(func() { close(claimed) })
					<-release
					return err
				})
			}()
			<-claimed
			secondDone := make(chan store.IntakeResult, 1)
			go func() {
				res, err := b.RecordIntake(second)
				if err != nil {
					t.Error(err)
				}
				secondDone <- res
			}()
			waitForLockWait(t, a)
			releaseOnce.Do(func() { close(release) })
			if err := <-firstDone; err != nil {
				t.Fatal(err)
			}
			if res := <-secondDone; !tc.check(res) {
				t.Errorf("second request: got %+v (replay %q)", res, res.Replay)
			}
		})
	}
	if sum, err := a.Summary(s.CustomerID, s.ID); err != nil || sum.Retrying != 2 {
		t.Errorf("got %d events (%v), want one per pair of requests", sum.Retrying, err)
	}
}

// TestIntakeTakesNoCounterLock: the intake of one node records events of
// an enabled subscription while another node's transaction holds its
// counters (recording outcomes, say): they are counted apart, read with
// the counters at once, and folded into them by the next transaction
// that locks them, which then counts its outcomes from there.
func TestIntakeTakesNoCounterLock(t *testing.T) {
	a, b, s := openNodes(t)
	ctx := context.Background()
	added, err := a.AddEvents([]store.NewEvent{{Type: "entityCreated", Payload: []byte(`{}`)}}, []store.Delivery{{SubscriptionID: s.ID}})
	if err != nil || len(added) != 1 {
		t.Fatalf("added %v, %v; want one event", added, err)
	}
	// Node b's transaction holds the counters.
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM sub_stats WHERE subscription_id = $1 FOR UPDATE`, s.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.AddEvents([]store.NewEvent{{Type: "entityCreated", Payload: []byte(`{}`)}, {Type: "entityCreated", Payload: []byte(`{}`)}},
			[]store.Delivery{{SubscriptionID: s.ID}, {Event: 1, SubscriptionID: s.ID}})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the intake waits for the lock of the subscription's counters")
	}
	if sum, err := b.Summary(s.CustomerID, s.ID); err != nil || sum.Retrying != 3 {
		t.Errorf("summary while the counters are locked: %+v, %v; want 3 waiting", sum, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// An outcome folds the counts kept apart: 2 waiting, 1 succeeded.
	if err := b.RecordAttempts([]store.AttemptResult{{SubscriptionID: s.ID, Seq: store.EventSeq(added[0].ID), StartedAt: b.Now(),
		Outcome: store.Delivered, StatusCode: 200, Endpoint: s.Endpoint}}); err != nil {
		t.Fatal(err)
	}
	var apart int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM intake_counts`).Scan(&apart); err != nil || apart != 0 {
		t.Errorf("after an outcome: %d rows of counts kept apart, %v; want them folded", apart, err)
	}
	var waiting, succeeded int64
	if err := a.pool.QueryRow(ctx, `SELECT waiting, succeeded FROM sub_stats WHERE subscription_id = $1`, s.ID).Scan(&waiting, &succeeded); err != nil ||
		waiting != 2 || succeeded != 1 {
		t.Errorf("counters after the fold: waiting %d, succeeded %d, %v; want 2 and 1", waiting, succeeded, err)
	}
	if sum, err := a.Summary(s.CustomerID, s.ID); err != nil || sum.Retrying != 2 || sum.Succeeded != 1 {
		t.Errorf("summary after the fold: %+v, %v; want 2 waiting, 1 succeeded", sum, err)
	}
}
