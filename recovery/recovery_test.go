package recovery

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"hookd/delivery"
	"hookd/store"
	"hookd/store/bolt"
)

// env is a store under t.TempDir() with one customer and one subscription.
type env struct {
	t   *testing.T
	dir string
	db  *bolt.DB
	cid uuid.UUID
	sub store.Subscription
	now func() time.Time // the store's clock; time.Now when nil
}

func newEnv(t *testing.T) *env { return newEnvAt(t, nil) }

// newEnvAt is newEnv with the store clock now.
func newEnvAt(t *testing.T, now func() time.Time) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), cid: uuid.New(), now: now}
	e.open()
	if _, err := e.db.CreateClient(e.cid, uuid.New(), store.HashSecret("s"), delivery.NewKeySet); err != nil {
		t.Fatal(err)
	}
	e.sub = e.addSub("http://127.0.0.1:1/hook")
	return e
}

func (e *env) open() {
	e.t.Helper()
	db, err := bolt.Open(e.dir, bolt.Options{NoSync: true, Now: e.now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	e.t.Cleanup(func() { db.Close() })
}

func (e *env) addSub(endpoint string) store.Subscription {
	e.t.Helper()
	now := e.db.Now()
	s := store.Subscription{ID: uuid.New(), CustomerID: e.cid, Title: "s-" + uuid.NewString()[:8], Endpoint: endpoint,
		Events: []string{"entityCreated"}, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := e.db.CreateSubscription(s, 0); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// post records n events for s, waiting for their first attempt.
func (e *env) post(s store.Subscription, n int) []uuid.UUID {
	e.t.Helper()
	var evs []store.NewEvent
	var ds []store.Delivery
	for i := range n {
		evs = append(evs, store.NewEvent{Type: "entityCreated", Txn: uuid.NewString(), Toe: 1700000000 + int64(i), Payload: []byte(`{"sub":"u` + strconv.Itoa(i) + `"}`)})
		ds = append(ds, store.Delivery{SubscriptionID: s.ID, Event: i})
	}
	added, err := e.db.AddEvents(evs, ds)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]uuid.UUID, len(added))
	for i, a := range added {
		ids[i] = a.ID
	}
	return ids
}

// failed records n failed events for s: a disable fails the waiting ones.
func (e *env) failed(s store.Subscription, n int) []uuid.UUID {
	e.t.Helper()
	ids := e.post(s, n)
	e.setEnabled(s, false)
	if _, err := e.db.FailWaiting(s.ID, n); err != nil {
		e.t.Fatal(err)
	}
	e.setEnabled(s, true)
	return ids
}

func (e *env) setEnabled(s store.Subscription, on bool) {
	e.t.Helper()
	if _, _, err := e.db.UpdateSubscription(s.CustomerID, s.ID, func(x *store.Subscription) error { x.Enabled = on; return nil }); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) summary(s store.Subscription) store.Summary {
	e.t.Helper()
	sum, err := e.db.Summary(s.CustomerID, s.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return sum
}

// deliver records a successful attempt of up to n of s's due events, as
// the dispatcher would, and returns how many it delivered.
func (e *env) deliver(s store.Subscription, n int) int {
	e.t.Helper()
	due, _, err := e.db.DueEvents(s.ID, e.db.Now(), n, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	var rs []store.AttemptResult
	for _, ev := range due {
		rs = append(rs, store.AttemptResult{SubscriptionID: s.ID, Seq: ev.Seq, StartedAt: e.db.Now(), Endpoint: s.Endpoint, JWS: ev.JWS, Outcome: store.Delivered, StatusCode: 204})
	}
	if err := e.db.RecordAttempts(rs); err != nil {
		e.t.Fatal(err)
	}
	return len(due)
}

// stepper drives a Runner's pacing: each step lets one waiting recovery
// look at the backlog once and returns when it waits again.
type stepper struct {
	ready chan struct{}
	ticks chan struct{}
}

func newStepper() *stepper {
	return &stepper{ready: make(chan struct{}), ticks: make(chan struct{})}
}

func (s *stepper) wait(ctx context.Context) error {
	select {
	case s.ready <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-s.ticks:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// step lets the recovery, which must be waiting, take one more look.
func (s *stepper) step(t *testing.T, r *Runner) {
	t.Helper()
	<-s.ready
	s.ticks <- struct{}{}
}

func (e *env) runner(o Options) *Runner {
	o.DB = e.db
	o.Log = zerolog.Nop()
	r := New(o)
	r.Start(context.Background())
	e.t.Cleanup(r.Close)
	return r
}

// finished waits for the runner's background recoveries to end.
func finished(r *Runner) { r.wg.Wait() }

func TestRecoveryPacesOnTheBacklogAndCompletes(t *testing.T) {
	e := newEnv(t)
	e.failed(e.sub, 25)
	st := newStepper()
	r := e.runner(Options{Batch: 10, Backlog: 5, Wait: st.wait})

	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != Running || j.Matched != 25 || j.Requeued != 10 {
		t.Fatalf("after the first batch: %+v, want running, matched 25, requeued 10", j)
	}
	// The backlog is 10, over the bound: looking again requeues nothing.
	for range 3 {
		st.step(t, r)
	}
	<-st.ready
	if j, _ = r.Job(e.cid, e.sub.ID, j.ID); j.Requeued != 10 {
		t.Fatalf("requeued %d with a backlog of 10 over a bound of 5, want 10", j.Requeued)
	}
	if sum := e.summary(e.sub); sum.Retrying != 10 || sum.Failed != 15 {
		t.Fatalf("summary %+v, want 10 waiting and 15 failed", sum)
	}
	// Deliveries bring the backlog to 5, still not below the bound.
	e.deliver(e.sub, 5)
	st.ticks <- struct{}{}
	st.step(t, r)
	<-st.ready
	if j, _ = r.Job(e.cid, e.sub.ID, j.ID); j.Requeued != 10 {
		t.Fatalf("requeued %d at the bound, want 10", j.Requeued)
	}
	// Below the bound: the next batch.
	e.deliver(e.sub, 1)
	st.ticks <- struct{}{}
	<-st.ready
	if j, _ = r.Job(e.cid, e.sub.ID, j.ID); j.Requeued != 20 || j.State != Running {
		t.Fatalf("after the second batch: %+v, want running, 20 requeued", j)
	}
	if sum := e.summary(e.sub); sum.Retrying != 14 {
		t.Fatalf("backlog %d, want 4+10", sum.Retrying)
	}
	e.deliver(e.sub, 14)
	st.ticks <- struct{}{}
	finished(r)
	j, err = r.Job(e.cid, e.sub.ID, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != Completed || j.Requeued != 25 || j.FinishedAt.IsZero() || j.UpdatedAt.Before(j.StartedAt) {
		t.Fatalf("at the end: %+v, want completed with 25 requeued", j)
	}
	if sum := e.summary(e.sub); sum.Failed != 0 || sum.Retrying != 5 {
		t.Fatalf("summary %+v, want none failed and the last 5 waiting", sum)
	}
}

func TestRecoverySmallCompletesAtOnce(t *testing.T) {
	e := newEnv(t)
	e.failed(e.sub, 7)
	r := e.runner(Options{Batch: 10, Backlog: 5, Wait: newStepper().wait})
	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != Completed || j.Matched != 7 || j.Requeued != 7 || j.FinishedAt.IsZero() {
		t.Fatalf("%+v, want completed with 7 of 7", j)
	}
	// Another recovery may start at once; it finds nothing.
	j2, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil || j2.State != Completed || j2.Requeued != 0 || j2.ID == j.ID {
		t.Fatalf("second recovery %+v, %v", j2, err)
	}
	if _, err := r.Job(e.cid, e.sub.ID, j.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the replaced recovery: %v, want not found", err)
	}
}

func TestRecoverySelectsTheWindow(t *testing.T) {
	e := newEnv(t)
	early := e.failed(e.sub, 4)
	mid, err := e.db.Event(e.cid, e.sub.ID, early[3])
	if err != nil {
		t.Fatal(err)
	}
	e.failed(e.sub, 6)
	r := e.runner(Options{Batch: 10, Backlog: 5, Wait: newStepper().wait})
	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{After: mid.CreatedAt})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != Completed || j.Matched != 6 || j.Requeued != 6 {
		t.Fatalf("%+v, want 6 of 6 after the window's start", j)
	}
	if sum := e.summary(e.sub); sum.Failed != 4 {
		t.Fatalf("failed %d, want the 4 before the window", sum.Failed)
	}
}

func TestRecoveryOnePerSubscription(t *testing.T) {
	e := newEnv(t)
	other := e.addSub("http://127.0.0.1:1/other")
	e.failed(e.sub, 30)
	e.failed(other, 3)
	st := newStepper()
	r := e.runner(Options{Batch: 10, Backlog: 5, Wait: st.wait})
	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	var re *RunningError
	if !errors.As(err, &re) || re.Job.ID != j.ID || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second recovery of the same subscription: %v, want the running one %s", err, j.ID)
	}
	if j2, err := r.Begin(e.cid, other.ID, store.FailedQuery{}); err != nil || j2.State != Completed || j2.Requeued != 3 {
		t.Fatalf("recovery of another subscription: %+v, %v", j2, err)
	}
	if _, err := r.Job(uuid.New(), e.sub.ID, j.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another customer reads the recovery: %v", err)
	}
	if _, err := r.Begin(uuid.New(), e.sub.ID, store.FailedQuery{}); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Fatalf("another customer starts a recovery of the subscription: %v, want not found (not the running one)", err)
	}
	if _, err := r.Cancel(uuid.New(), e.sub.ID, j.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another customer cancels the recovery: %v", err)
	}
	<-st.ready
}

func TestRecoveryCancel(t *testing.T) {
	e := newEnv(t)
	e.failed(e.sub, 30)
	st := newStepper()
	r := e.runner(Options{Batch: 10, Backlog: 5, Wait: st.wait})
	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	<-st.ready
	c, err := r.Cancel(e.cid, e.sub.ID, j.ID)
	if err != nil || c.State != Canceled || c.FinishedAt.IsZero() {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	finished(r)
	e.deliver(e.sub, 10)
	if sum := e.summary(e.sub); sum.Failed != 20 || sum.Retrying != 0 {
		t.Fatalf("summary %+v after the cancel, want the 20 not requeued still failed", sum)
	}
	if j, _ = r.Job(e.cid, e.sub.ID, j.ID); j.State != Canceled || j.Requeued != 10 {
		t.Fatalf("%+v, want canceled with 10 requeued", j)
	}
	if _, err := r.Cancel(e.cid, e.sub.ID, j.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second cancel: %v, want a conflict", err)
	}
	// The next recovery is allowed and takes the rest.
	j2, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil || j2.Matched != 20 {
		t.Fatalf("next recovery %+v, %v", j2, err)
	}
}

func TestRecoveryFailsWhenTheSubscriptionIsDisabled(t *testing.T) {
	e := newEnv(t)
	e.failed(e.sub, 30)
	st := newStepper()
	r := e.runner(Options{Batch: 10, Backlog: 5, Wait: st.wait})
	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	e.deliver(e.sub, 10)
	e.setEnabled(e.sub, false)
	st.step(t, r)
	finished(r)
	if j, _ = r.Job(e.cid, e.sub.ID, j.ID); j.State != Failed || j.Reason != "the subscription is disabled" || j.Requeued != 10 {
		t.Fatalf("%+v, want failed because the subscription is disabled", j)
	}
	// A disabled subscription refuses a recovery outright.
	if _, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("recovery of a disabled subscription: %v, want a conflict", err)
	}
}

// A restart ends a recovery; the same selection posted again continues
// with the events still failed.
func TestRecoveryAfterRestartContinues(t *testing.T) {
	e := newEnv(t)
	e.failed(e.sub, 35)
	st := newStepper()
	r := e.runner(Options{Batch: 10, Backlog: 5, Wait: st.wait})
	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	<-st.ready
	r.Close()
	if got, _ := r.Job(e.cid, e.sub.ID, j.ID); got.Requeued != 10 {
		t.Fatalf("requeued %d before the restart, want 10", got.Requeued)
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	e.open()

	r2 := e.runner(Options{Batch: 10, Backlog: 100, Wait: func(ctx context.Context) error { return ctx.Err() }})
	if _, err := r2.Job(e.cid, e.sub.ID, j.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the recovery survived the restart: %v", err)
	}
	j2, err := r2.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if j2.Matched != 25 {
		t.Fatalf("matched %d after the restart, want the 25 still failed", j2.Matched)
	}
	finished(r2)
	if j2, _ = r2.Job(e.cid, e.sub.ID, j2.ID); j2.State != Completed || j2.Requeued != 25 {
		t.Fatalf("%+v, want completed with 25", j2)
	}
	if sum := e.summary(e.sub); sum.Failed != 0 || sum.Retrying != 35 {
		t.Fatalf("summary %+v, want all 35 waiting", sum)
	}
}

func TestRecoveryFailsWhenTheSubscriptionIsDeleted(t *testing.T) {
	e := newEnv(t)
	e.failed(e.sub, 30)
	st := newStepper()
	r := e.runner(Options{Batch: 10, Backlog: 100, Wait: st.wait})
	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.db.DeleteSubscription(e.cid, e.sub.ID); err != nil {
		t.Fatal(err)
	}
	st.step(t, r)
	finished(r)
	if j, _ = r.Job(e.cid, e.sub.ID, j.ID); j.State != Failed || j.Reason != "the subscription was deleted" {
		t.Fatalf("%+v, want failed because the subscription was deleted", j)
	}
}

func TestRecoveryRefusedOnceClosed(t *testing.T) {
	e := newEnv(t)
	e.failed(e.sub, 3)
	r := e.runner(Options{})
	r.Close()
	if _, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin after Close: %v, want ErrClosed", err)
	}
	if sum := e.summary(e.sub); sum.Failed != 3 {
		t.Fatalf("summary %+v, want the 3 still failed", sum)
	}
}

// TestRecoveryRateBound: with a rate, a recovery whose backlog would let it
// go on requeues no faster than the rate, on the runner's clock.
func TestRecoveryRateBound(t *testing.T) {
	e := newEnv(t)
	e.failed(e.sub, 100)
	st := newStepper()
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	// 10 events a second in batches of 10: a batch a second, the bucket
	// full (one batch) at the start.
	r := e.runner(Options{Batch: 10, Backlog: 1000, Wait: st.wait, Rate: 10, Now: clock})
	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	requeued := func() int {
		<-st.ready // waiting again: the look is over
		j, err := r.Job(e.cid, e.sub.ID, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		return j.Requeued
	}
	st.step(t, r) // the bucket's batch
	if got := requeued(); got != 20 {
		t.Fatalf("requeued %d after the first look, want 20 (the request's batch and the bucket's)", got)
	}
	for i, d := range []time.Duration{200 * time.Millisecond, 500 * time.Millisecond} {
		advance(d)
		st.ticks <- struct{}{}
		if got := requeued(); got != 20 {
			t.Fatalf("look %d, %v later: requeued %d, want still 20 under 10 events/s", i, d, got)
		}
	}
	advance(300 * time.Millisecond) // a second since the bucket's batch
	st.ticks <- struct{}{}
	if got := requeued(); got != 30 {
		t.Fatalf("a second later: requeued %d, want 30", got)
	}
}
