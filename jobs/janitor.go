package jobs

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"hookd/store"
)

// Defaults of the janitor.
const (
	DefaultJanitorInterval = 5 * time.Minute
	// DefaultPurgeBatch bounds each store transaction of the event and
	// token tasks, so that deliveries and API calls wait for no more than
	// one short transaction (about 15 ms for 1,000 events of the
	// embedded store).
	DefaultPurgeBatch = 1000
)

// Task is one piece of the janitor's work. Run deletes what is due in
// bounded batches until nothing is left or ctx is done and returns how many
// items it deleted.
type Task struct {
	Name string
	Run  func(ctx context.Context) (int, error)
}

// JanitorOptions configure a Janitor.
type JanitorOptions struct {
	// Interval is the time between runs; DefaultJanitorInterval when zero.
	Interval time.Duration
	// Tasks run in order in every run.
	Tasks []Task
	// Log gets one line per task and run.
	Log zerolog.Logger
	// Registerer receives the janitor metrics; nil registers none.
	Registerer prometheus.Registerer
	// Exclusive, when set, is asked before each run for the right to run
	// alone among the processes sharing the store (a database lock): when
	// another holds it (ok false) or it cannot be asked (err), the run is
	// skipped; release is called after the run.
	Exclusive func(ctx context.Context) (release func(), ok bool, err error)
}

// Janitor runs its tasks at start and then every Interval. A task's error
// is logged and the next task runs.
type Janitor struct {
	o      JanitorOptions
	m      *janitorMetrics
	mu     sync.Mutex // one run at a time
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewJanitor returns a Janitor; Start sets it going.
func NewJanitor(o JanitorOptions) *Janitor {
	if o.Interval <= 0 {
		o.Interval = DefaultJanitorInterval
	}
	return &Janitor{o: o, m: newJanitorMetrics(o.Registerer, o.Log, o.Tasks)}
}

// Start runs the tasks now and then every Interval in a goroutine that
// exits when ctx ends or Close is called.
func (j *Janitor) Start(ctx context.Context) {
	ctx, j.cancel = context.WithCancel(ctx)
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		t := time.NewTicker(j.o.Interval)
		defer t.Stop()
		for {
			j.RunOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the janitor, cutting a run short, and waits for it.
func (j *Janitor) Close() {
	if j.cancel != nil {
		j.cancel()
	}
	j.wg.Wait()
}

// RunOnce runs every task once, in order, and logs one line per task with
// the number of items it deleted. With Exclusive set it runs only when no
// other process runs its janitor, and reports whether it ran.
func (j *Janitor) RunOnce(ctx context.Context) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.o.Exclusive != nil {
		release, ok, err := j.o.Exclusive(ctx)
		switch {
		case err != nil:
			j.o.Log.Error().Err(err).Msg("janitor run skipped: the lock that makes it run on one node cannot be taken")
			return false
		case !ok:
			j.o.Log.Debug().Msg("janitor run skipped: another node is running it")
			return false
		}
		defer release()
	}
	for _, t := range j.o.Tasks {
		if ctx.Err() != nil {
			return true
		}
		start := time.Now()
		n, err := t.Run(ctx)
		j.m.removed.WithLabelValues(taskLabel(t.Name)).Add(float64(n))
		ev := j.o.Log.Info()
		if err != nil && ctx.Err() == nil {
			j.m.errors.WithLabelValues(taskLabel(t.Name)).Inc()
			ev = j.o.Log.Error().Err(err)
		} else if n == 0 {
			ev = j.o.Log.Debug()
		}
		ev.Str("task", t.Name).Int("deleted", n).Dur("took", time.Since(start)).Msg("janitor task")
	}
	return true
}

// batches calls step until it deletes fewer than batch items, ctx ends or
// it fails, and returns the sum. After each full batch it waits as long as
// the batch took, so that a long deletion (the first run on a store past
// its retention) holds the store's write lock at most half of the time and
// the deliveries' and the intake's transactions go in between.
func batches(ctx context.Context, batch int, step func() (int, error)) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		start := time.Now()
		n, err := step()
		total += n
		if err != nil || n < batch {
			return total, err
		}
		t := time.NewTimer(time.Since(start))
		select {
		case <-ctx.Done():
			t.Stop()
			return total, ctx.Err()
		case <-t.C:
		}
	}
}

// ExpiredEventsTask deletes events created more than retention ago, in
// transactions of at most batch events, then the timeline's hours that
// ended before the window (uncounted in the result).
func ExpiredEventsTask(db store.Store, retention time.Duration, batch int) Task {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	return Task{Name: "expired events", Run: func(ctx context.Context) (int, error) {
		cutoff := db.Now().Add(-retention)
		n, err := batches(ctx, batch, func() (int, error) { return db.PurgeExpiredEvents(cutoff, batch) })
		if err != nil {
			return n, err
		}
		_, err = batches(ctx, batch, func() (int, error) { return db.PurgeTimeline(cutoff, batch) })
		return n, err
	}}
}

// DeletedSubscriptionsTask deletes the events of deleted subscriptions, in
// transactions of at most batch keys, and drops each tombstone once nothing
// of the subscription is left (its export jobs go by the export task).
func DeletedSubscriptionsTask(db store.Store, batch int) Task {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	return Task{Name: "deleted subscriptions", Run: func(ctx context.Context) (int, error) {
		subs, err := db.Tombstones()
		if err != nil {
			return 0, err
		}
		total := 0 // events: their index entries go with them uncounted
		for _, sub := range subs {
			for {
				if err := ctx.Err(); err != nil {
					return total, err
				}
				events, keys, err := db.PurgeDeleted(sub, batch)
				total += events
				if err != nil {
					return total, err
				}
				if keys == 0 {
					break
				}
			}
			if _, err := db.DropTombstone(sub); err != nil {
				return total, err
			}
		}
		return total, nil
	}}
}

// ExpiredTokensTask deletes expired access tokens, in transactions of at
// most batch tokens.
func ExpiredTokensTask(db store.Store, batch int) Task {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	return Task{Name: "expired tokens", Run: func(ctx context.Context) (int, error) {
		now := db.Now()
		return batches(ctx, batch, func() (int, error) { return db.DeleteExpiredTokens(now, batch) })
	}}
}
