// Package recovery runs hookd's recoveries: jobs that put a subscription's
// failed events back to awaiting-executing (optionally only those of a time
// window or a failure reason), a batch at a time, paced so that live
// deliveries are never held up behind them.
//
// A recovery requeues its first batch at once, in the request that starts
// it; a recovery that needs no more than that is completed there. A larger
// one goes on in the background: it requeues its next batch only when the
// subscription's backlog (its events awaiting an attempt or a retry) is
// below Backlog.
//
// Live events go first, in two ways:
//
//   - Same subscription. The requeued events do not all fall due at once:
//     their due times are spread one after the other at the recovery rate
//     (store.Pace), continuing after the previous batch's last one. The
//     dispatcher takes due events oldest due first, so a live event, due
//     when it is recorded, goes before every recovered event not yet due,
//     and waits only for the few that fell due since the lane's last round.
//   - Other subscriptions. They have their own lanes, but share the CPU:
//     each recovered attempt is a signature. Spreading the due times makes
//     the recovered attempts start one by one instead of a batch (up to
//     --max-per-endpoint signatures) at once, which would queue the live
//     attempts' goroutines behind them. And the rate itself yields: the
//     runner samples the pressure on the CPU (Options.Pressure, in hookd
//     the Go scheduler's latency: how long runnable goroutines wait for a
//     CPU) every adjustEvery and halves the rate when it exceeds
//     PressureBound, down to a twentieth of Rate, and raises it again by a
//     tenth of Rate per quiet period (additive increase, multiplicative
//     decrease, as TCP does with its window).
//
// Recoveries live in memory: a restart ends them. Posting the same
// selection again continues where the last one stopped, because the events
// it requeued are no longer failed. Each subscription keeps one recovery:
// the running one or the last one.
package recovery

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"hookd/store"
)

// Defaults of a Runner.
const (
	// DefaultBatch is the number of failed events a recovery requeues at
	// a time, in one store transaction.
	DefaultBatch = 100
	// DefaultBacklog bounds a subscription's backlog: a recovery requeues
	// its next batch only while fewer events than this await an attempt
	// or a retry.
	DefaultBacklog = 25
	// DefaultPoll is how often a recovery that waits looks at the backlog
	// again.
	DefaultPoll = 20 * time.Millisecond
	// DefaultRate is the events per second that all recoveries together
	// requeue at most (--recovery-rate): about a quarter of what one
	// 2-core machine delivers with RS256, so that the signatures of
	// recovered events leave the CPU to live ones.
	DefaultRate = 500
	// DefaultPressureBound is the CPU pressure (Options.Pressure: the
	// 99th percentile of the Go scheduler's latency in hookd) above which
	// recoveries halve their rate.
	DefaultPressureBound = 2 * time.Millisecond
	// adjustEvery is how often the rate follows the pressure.
	adjustEvery = 250 * time.Millisecond
	// minRateShare is the lowest rate under pressure, as a share of
	// Options.Rate, and riseShare what a quiet period adds back.
	minRateShare = 1.0 / 20
	riseShare    = 1.0 / 10
	// keepFinished is how long a finished recovery stays readable when
	// another subscription starts one (it is replaced at once by the
	// next recovery of its own subscription).
	keepFinished = 24 * time.Hour
)

// State is a recovery's state.
type State int

// The states of a recovery.
const (
	Running State = iota + 1
	Completed
	Canceled
	Failed
)

var stateNames = map[State]string{Running: "running", Completed: "completed", Canceled: "canceled", Failed: "failed"}

func (s State) String() string { return stateNames[s] }

// Job is a recovery as the API shows it: a copy, safe to keep.
type Job struct {
	ID             uuid.UUID
	CustomerID     uuid.UUID
	SubscriptionID uuid.UUID
	Query          store.FailedQuery
	State          State
	// Matched is the number of failed events the selection matched when
	// the recovery started.
	Matched int
	// Requeued is the number of events put back so far.
	Requeued int
	// Reason says why a recovery failed.
	Reason     string
	StartedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time
}

// ErrClosed is Begin's refusal once the Runner is closed (or before it
// started).
var ErrClosed = errors.New("recoveries are stopped")

// RunningError is the refusal of a second recovery of a subscription
// while one runs; Job is the running one.
type RunningError struct{ Job Job }

func (e *RunningError) Error() string {
	return "a recovery of this subscription is running: " + e.Job.ID.String()
}

// Is makes errors.Is(err, store.ErrConflict) true.
func (e *RunningError) Is(target error) bool { return target == store.ErrConflict }

// Options configure a Runner.
type Options struct {
	DB store.Store
	// Notify tells the dispatcher that a subscription has due events.
	Notify func(subIDs ...uuid.UUID)
	Log    zerolog.Logger
	// Batch is DefaultBatch when zero; Backlog is DefaultBacklog when zero.
	Batch   int
	Backlog int
	// Wait returns when a waiting recovery should look at the backlog
	// again, or ctx's error; nil waits DefaultPoll.
	Wait func(ctx context.Context) error
	// Rate is the events per second all recoveries together requeue at
	// most, their due times spread at it; zero sets no bound (and no
	// spread). Now is the clock of that bound and of the pressure's
	// sampling (time.Now when nil); the due times are on the store's.
	Rate float64
	Now  func() time.Time
	// Pressure returns the pressure on the CPU since its previous call
	// (hookd passes SchedLatency's); when it exceeds PressureBound
	// (DefaultPressureBound when zero) recoveries slow down. Nil, or a
	// zero Rate, keeps the rate at Rate.
	Pressure      func() time.Duration
	PressureBound time.Duration
}

// Runner runs recoveries; Start sets it going and Close stops them.
type Runner struct {
	o       Options
	limiter *rate.Limiter // Options.Rate; nil when it is zero

	paceMu     sync.Mutex
	rate       float64   // the limiter's rate now, under pressure at most Options.Rate
	adjustedAt time.Time // Options.Now of the last adjustment
	cursor     time.Time // due time after the last requeued event (store clock)

	mu      sync.Mutex
	jobs    map[uuid.UUID]*job // by subscription
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

type job struct {
	Job
	cancel context.CancelFunc
}

// New returns a Runner; recoveries go on in the background only after
// Start.
func New(o Options) *Runner {
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Backlog <= 0 {
		o.Backlog = DefaultBacklog
	}
	if o.Wait == nil {
		o.Wait = func(ctx context.Context) error {
			t := time.NewTimer(DefaultPoll)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	if o.Notify == nil {
		o.Notify = func(...uuid.UUID) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PressureBound <= 0 {
		o.PressureBound = DefaultPressureBound
	}
	r := &Runner{o: o, jobs: map[uuid.UUID]*job{}, rate: o.Rate}
	if o.Rate > 0 {
		// x/time/rate's token bucket, a batch's worth deep: a batch
		// goes once the bucket holds as many tokens as events.
		r.limiter = rate.NewLimiter(rate.Limit(o.Rate), o.Batch)
	}
	return r
}

// Start lets recoveries run in the background until ctx ends or Close.
func (r *Runner) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctx, r.stop = context.WithCancel(ctx)
	r.started = true
}

// Close stops the running recoveries (a batch in progress commits) and
// waits for them; Begin refuses new ones afterwards.
func (r *Runner) Close() {
	r.mu.Lock()
	if r.stop != nil {
		r.stop()
	}
	r.started = false
	r.mu.Unlock()
	r.wg.Wait()
}

// Begin starts a recovery of subscription sub's failed events that q
// selects and requeues its first batch before it returns. It returns a
// *RunningError while another recovery of sub runs, and the store's error
// when the first batch fails (nothing is started then).
func (r *Runner) Begin(customerID, sub uuid.UUID, q store.FailedQuery) (Job, error) {
	r.mu.Lock()
	if !r.started {
		r.mu.Unlock()
		return Job{}, ErrClosed
	}
	if j := r.jobs[sub]; j != nil && j.CustomerID != customerID {
		r.mu.Unlock()
		return Job{}, store.ErrNotFound // another customer's subscription
	} else if j != nil && j.State == Running {
		r.mu.Unlock()
		return Job{}, &RunningError{Job: j.Job}
	}
	now := r.o.DB.Now()
	for id, j := range r.jobs {
		if j.State != Running && now.Sub(j.FinishedAt) > keepFinished {
			delete(r.jobs, id)
		}
	}
	ctx, cancel := context.WithCancel(r.ctx)
	j := &job{Job: Job{ID: uuid.New(), CustomerID: customerID, SubscriptionID: sub, Query: q, State: Running, StartedAt: now, UpdatedAt: now}, cancel: cancel}
	prev := r.jobs[sub]
	r.jobs[sub] = j // holds the place: a second Begin is refused meanwhile
	r.wg.Add(1)     // Close waits for this Begin, and for the run it may start
	r.mu.Unlock()

	matched, err := r.matched(customerID, sub, q)
	var n int
	if err == nil {
		n, err = r.requeue(customerID, sub, q)
	}
	if n > 0 {
		r.o.Notify(sub)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.wg.Done()
		cancel()
		if prev != nil {
			r.jobs[sub] = prev
		} else {
			delete(r.jobs, sub)
		}
		return Job{}, err
	}
	j.Matched = matched
	r.progress(j, n)
	switch {
	case j.State != Running: // canceled meanwhile
		r.wg.Done()
		cancel()
	case n < r.o.Batch:
		r.finish(j, Completed, "")
		r.wg.Done()
		cancel()
	default:
		go func() {
			defer r.wg.Done()
			r.run(ctx, j)
		}()
	}
	return j.Job, nil
}

// matched counts the failed events q selects.
func (r *Runner) matched(customerID, sub uuid.UUID, q store.FailedQuery) (int, error) {
	_, total, err := r.o.DB.Events(customerID, sub, store.EventQuery{State: store.Failure, After: q.After, Before: q.Before, Reason: q.Reason, Limit: 1})
	return total, err
}

// run requeues j's batches while the backlog allows, until none is left,
// the recovery is canceled or the store refuses.
func (r *Runner) run(ctx context.Context, j *job) {
	defer j.cancel()
	cid, sub, q := j.CustomerID, j.SubscriptionID, j.Query
	log := r.o.Log.With().Str("recovery", j.ID.String()).Str("subscription", sub.String()).Logger()
	for {
		if r.o.Wait(ctx) != nil {
			return
		}
		sum, err := r.o.DB.Summary(cid, sub)
		if err == nil && sum.Retrying >= uint64(r.o.Backlog) {
			continue
		}
		if err == nil && r.limiter != nil && !r.limiter.AllowN(r.adjust(), r.o.Batch) {
			continue // over the rate: the next look decides
		}
		n := 0
		if err == nil {
			n, err = r.requeue(cid, sub, q)
		}
		if errors.Is(err, store.ErrUnavailable) {
			continue // the database comes back: go on then
		}
		r.mu.Lock()
		if j.State != Running { // canceled meanwhile: the batch stays requeued
			r.progress(j, n)
			r.mu.Unlock()
			if n > 0 {
				r.o.Notify(sub)
			}
			return
		}
		r.progress(j, n)
		switch {
		case err != nil:
			reason := "the recovery stopped on an internal error"
			var ce *store.ConflictError
			if errors.As(err, &ce) {
				reason = ce.Reason
			} else if errors.Is(err, store.ErrNotFound) {
				reason = "the subscription was deleted"
			} else {
				log.Error().Err(err).Msg("recovery failed")
			}
			r.finish(j, Failed, reason)
		case n < r.o.Batch:
			r.finish(j, Completed, "")
		}
		done, requeued := j.State != Running, j.Requeued
		r.mu.Unlock()
		if n > 0 {
			r.o.Notify(sub)
		}
		if done {
			log.Info().Int("requeued", requeued).Msg("recovery finished")
			return
		}
	}
}

// requeue requeues the next batch of q, due one after the other at the
// current rate from the end of the previous batch (of any recovery) on.
func (r *Runner) requeue(customerID, sub uuid.UUID, q store.FailedQuery) (int, error) {
	r.paceMu.Lock()
	p := store.Pace{Start: r.o.DB.Now()}
	if r.cursor.After(p.Start) {
		p.Start = r.cursor
	}
	if r.rate > 0 {
		p.Every = time.Duration(float64(time.Second) / r.rate)
	}
	// The batch's due times are reserved before the store call, so that
	// a concurrent recovery's batch follows them.
	end := p.Start.Add(time.Duration(r.o.Batch) * p.Every)
	r.cursor = end
	r.paceMu.Unlock()

	n, err := r.o.DB.RedeliverFailed(customerID, sub, q, r.o.Batch, p)
	if n < r.o.Batch {
		r.paceMu.Lock()
		if r.cursor.Equal(end) { // no other batch since: give back the rest
			r.cursor = p.Start.Add(time.Duration(n) * p.Every)
		}
		r.paceMu.Unlock()
	}
	return n, err
}

// adjust lets the rate follow the pressure on the CPU, at most once every
// adjustEvery, and returns the time it read (Options.Now).
func (r *Runner) adjust() time.Time {
	now := r.o.Now()
	if r.o.Pressure == nil || r.limiter == nil {
		return now
	}
	r.paceMu.Lock()
	defer r.paceMu.Unlock()
	if !r.adjustedAt.IsZero() && now.Sub(r.adjustedAt) < adjustEvery {
		return now
	}
	first := r.adjustedAt.IsZero()
	r.adjustedAt = now
	p := r.o.Pressure()
	if first {
		return now // the first sample covers the time before the recovery
	}
	was := r.rate
	if p > r.o.PressureBound {
		r.rate = max(r.rate/2, r.o.Rate*minRateShare)
	} else {
		r.rate = min(r.rate+r.o.Rate*riseShare, r.o.Rate)
	}
	if r.rate != was {
		r.limiter.SetLimitAt(now, rate.Limit(r.rate))
		r.o.Log.Debug().Dur("pressure", p).Float64("rate", r.rate).Msg("recovery rate adjusted")
	}
	return now
}

// Rate returns the events per second recoveries requeue at most now: Rate,
// or less while the CPU is under pressure.
func (r *Runner) Rate() float64 {
	r.paceMu.Lock()
	defer r.paceMu.Unlock()
	return r.rate
}

// progress counts n more requeued events; r.mu is held.
func (r *Runner) progress(j *job, n int) {
	j.Requeued += n
	j.UpdatedAt = r.o.DB.Now()
}

// finish ends j in state st; r.mu is held.
func (r *Runner) finish(j *job, st State, reason string) {
	j.State, j.Reason = st, reason
	j.FinishedAt = r.o.DB.Now()
	j.UpdatedAt = j.FinishedAt
}

// Job returns recovery id of customer customerID's subscription sub, or
// store.ErrNotFound.
func (r *Runner) Job(customerID, sub, id uuid.UUID) (Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[sub]
	if j == nil || j.ID != id || j.CustomerID != customerID {
		return Job{}, store.ErrNotFound
	}
	return j.Job, nil
}

// Cancel stops a running recovery; the events it requeued stay requeued.
// A recovery that has finished is a conflict.
func (r *Runner) Cancel(customerID, sub, id uuid.UUID) (Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[sub]
	if j == nil || j.ID != id || j.CustomerID != customerID {
		return Job{}, store.ErrNotFound
	}
	if j.State != Running {
		return j.Job, &store.ConflictError{Reason: "the recovery has already " + j.State.String()}
	}
	r.finish(j, Canceled, "")
	j.cancel()
	return j.Job, nil
}
