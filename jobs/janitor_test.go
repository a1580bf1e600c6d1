package jobs

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"hookd/store"
	"hookd/store/bolt"
)

// janitorStore opens a store whose clock starts at a fixed time and is
// moved by the returned function; it is checked at cleanup.
func janitorStore(t *testing.T) (*bolt.DB, func(time.Duration)) {
	t.Helper()
	var mu sync.Mutex
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	db, err := bolt.Open(t.TempDir(), bolt.Options{NoSync: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		db.Close()
	})
	return db, advance
}

func janitorSub(t *testing.T, db *bolt.DB, customer uuid.UUID) store.Subscription {
	t.Helper()
	s := store.Subscription{ID: uuid.New(), CustomerID: customer, Title: "j " + uuid.NewString()[:8], Endpoint: "https://l.example/h",
		Events: []string{"entityCreated"}, Enabled: true, CreatedAt: db.Now(), UpdatedAt: db.Now()}
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

func janitorEvents(t *testing.T, db *bolt.DB, s store.Subscription, n int) {
	t.Helper()
	evs := make([]store.NewEvent, n)
	ds := make([]store.Delivery, n)
	for i := range evs {
		evs[i] = store.NewEvent{Type: "entityCreated", Payload: []byte(`{}`)}
		ds[i] = store.Delivery{SubscriptionID: s.ID, Event: i}
	}
	if _, err := db.AddEvents(evs, ds); err != nil {
		t.Fatal(err)
	}
}

func eventCount(t *testing.T, db *bolt.DB, s store.Subscription) int {
	t.Helper()
	_, n, err := db.Events(s.CustomerID, s.ID, store.EventQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestJanitorTasks(t *testing.T) {
	db, advance := janitorStore(t)
	customer := uuid.New()
	old, gone := janitorSub(t, db, customer), janitorSub(t, db, customer)
	janitorEvents(t, db, old, 25)
	janitorEvents(t, db, gone, 12)
	hash := store.HashSecret("token")
	if err := db.PutToken(hash, store.Token{CustomerID: customer, Scope: "x", ExpiresAt: db.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	advance(8 * 24 * time.Hour)
	janitorEvents(t, db, old, 3)
	if err := db.DeleteSubscription(customer, gone.ID); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	j := NewJanitor(JanitorOptions{Log: zerolog.New(&logs), Tasks: []Task{
		ExpiredEventsTask(db, 7*24*time.Hour, 10),
		DeletedSubscriptionsTask(db, 5),
		ExpiredTokensTask(db, 10),
	}})
	j.RunOnce(context.Background())

	if n := eventCount(t, db, old); n != 3 {
		t.Errorf("got %d events left, want the 3 within retention", n)
	}
	if tombs, _ := db.Tombstones(); len(tombs) != 0 {
		t.Errorf("got tombstones %v, want none", tombs)
	}
	if _, err := db.LookupToken(hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired token: got %v, want ErrNotFound", err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	want := []string{`"task":"expired events","deleted":25`, `"task":"deleted subscriptions","deleted":12`, `"task":"expired tokens","deleted":1`}
	if len(lines) != len(want) {
		t.Fatalf("got log lines %q, want one per task", lines)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("log line %d: got %s, want it to contain %s", i, lines[i], w)
		}
	}
}

func TestJanitorLogsErrorsAndGoesOn(t *testing.T) {
	var logs bytes.Buffer
	ran := false
	j := NewJanitor(JanitorOptions{Log: zerolog.New(&logs), Tasks: []Task{
		{Name: "broken", Run: func(context.Context) (int, error) { return 2, errors.New("disk on fire") }},
		{Name: "next", Run: func(context.Context) (int, error) { ran = true; return 0, nil }},
	}})
	j.RunOnce(context.Background())
	if !ran {
		t.Error("the task after a failing one did not run")
	}
	if !strings.Contains(logs.String(), `"level":"error","error":"disk on fire","task":"broken","deleted":2`) {
		t.Errorf("got logs %s, want an error line for the broken task", logs.String())
	}
}

func TestJanitorStartRunsAtStartAndEveryInterval(t *testing.T) {
	var runs atomic.Int32
	j := NewJanitor(JanitorOptions{Interval: 10 * time.Millisecond, Log: zerolog.Nop(), Tasks: []Task{
		{Name: "count", Run: func(context.Context) (int, error) { runs.Add(1); return 0, nil }},
	}})
	j.Start(context.Background())
	deadline := time.Now().Add(2 * time.Second)
	for runs.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	j.Close()
	n := runs.Load()
	if n < 3 {
		t.Fatalf("got %d runs, want at least 3", n)
	}
	time.Sleep(30 * time.Millisecond)
	if runs.Load() != n {
		t.Errorf("the janitor ran after Close")
	}
}

func TestExpiredEventsTaskStopsWithContext(t *testing.T) {
	db, advance := janitorStore(t)
	s := janitorSub(t, db, uuid.New())
	janitorEvents(t, db, s, 30)
	advance(8 * 24 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := ExpiredEventsTask(db, 7*24*time.Hour, 10).Run(ctx)
	if n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("got %d %v, want 0 and context.Canceled", n, err)
	}
}

func TestExpiredEventsTaskPurgesTimeline(t *testing.T) {
	db, advance := janitorStore(t)
	s := janitorSub(t, db, uuid.New())
	// A disabled subscription fails the events of the intake at once:
	// outcomes in the timeline without a delivery.
	if _, _, err := db.UpdateSubscription(s.CustomerID, s.ID, func(x *store.Subscription) error { x.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	janitorEvents(t, db, s, 4)
	advance(8 * 24 * time.Hour)
	janitorEvents(t, db, s, 2)
	if _, err := ExpiredEventsTask(db, 7*24*time.Hour, 10).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	hours, err := db.Timeline(s.CustomerID, s.ID, db.Now().Add(-30*24*time.Hour), db.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(hours) != 1 || hours[0].Failed != 2 || !hours[0].Start.Equal(db.Now().Truncate(time.Hour)) {
		t.Errorf("got hours %+v, want only the current hour with 2 failures", hours)
	}
}

// TestJanitorExclusive: with Exclusive set, a run happens only when the
// lock is had, and releases it after; a lock held elsewhere or that
// cannot be asked for skips the run (the error logged).
func TestJanitorExclusive(t *testing.T) {
	var lock sync.Mutex // the lock the processes sharing a store would share
	var lockErr error
	exclusive := func(context.Context) (func(), bool, error) {
		if lockErr != nil {
			return nil, false, lockErr
		}
		if !lock.TryLock() {
			return nil, false, nil
		}
		return lock.Unlock, true, nil
	}
	var runs atomic.Int64
	var logs bytes.Buffer
	j := NewJanitor(JanitorOptions{
		Log:       zerolog.New(&logs),
		Exclusive: exclusive,
		Tasks:     []Task{{Name: "count", Run: func(context.Context) (int, error) { runs.Add(1); return 0, nil }}},
	})
	lock.Lock() // another node runs its janitor
	if j.RunOnce(context.Background()) || runs.Load() != 0 {
		t.Fatalf("with the lock held elsewhere: ran %d tasks; want the run skipped", runs.Load())
	}
	lock.Unlock()
	if !j.RunOnce(context.Background()) || runs.Load() != 1 {
		t.Fatalf("with the lock free: got %d runs, want 1", runs.Load())
	}
	if !lock.TryLock() {
		t.Fatal("the lock is still held after the run, want it released")
	}
	lock.Unlock()
	lockErr = errors.New("database unreachable")
	if j.RunOnce(context.Background()) || runs.Load() != 1 {
		t.Fatalf("with the lock failing: got %d runs, want still 1", runs.Load())
	}
	if !strings.Contains(logs.String(), "database unreachable") {
		t.Errorf("log %q does not name the lock's error", logs.String())
	}
}

// TestBatchesLeaveTheStoreBetween: after each full batch the janitor waits
// as long as the batch took before the next, so that it holds the store
// at most half of the time; a partial batch ends the task at once. Time
// is synctest's: each batch takes 10 ms of it.
func TestBatchesLeaveTheStoreBetween(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const batch, took = 3, 10 * time.Millisecond
		left := 10 // three full batches, then one of 1
		var starts []time.Duration
		t0 := time.Now()
		n, err := batches(t.Context(), batch, func() (int, error) {
			starts = append(starts, time.Since(t0))
			time.Sleep(took)
			k := min(batch, left)
			left -= k
			return k, nil
		})
		if err != nil || n != 10 {
			t.Fatalf("got %d deleted, %v; want 10", n, err)
		}
		want := []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond}
		if !slices.Equal(starts, want) {
			t.Errorf("batches started at %v, want %v (each 10 ms batch followed by 10 ms for the others)", starts, want)
		}
		if end := time.Since(t0); end != 70*time.Millisecond {
			t.Errorf("the task ended after %v, want 70ms (no wait after the last, partial batch)", end)
		}
	})
}
