package delivery

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"hookd/store"
)

// Defaults of DispatcherOptions.
const (
	DefaultMaxInFlight    = 512
	DefaultMaxPerEndpoint = 32
	DefaultGrace          = 15 * time.Second
	DefaultRescan         = time.Second
	DefaultKeyRefresh     = time.Second
	// DefaultAutoDisableAfter is how long every attempt to a subscription
	// may fail before hookd disables it (what Svix does too).
	DefaultAutoDisableAfter = 5 * 24 * time.Hour
)

// unstoredFactor bounds the attempts whose exchange ended and whose
// outcome waits for the recorder's commit: MaxInFlight and MaxPerEndpoint
// bound the exchanges with endpoints, and the attempts in flight, stored
// or not, are at most unstoredFactor times those. An attempt's place
// among its endpoint's exchanges is free as soon as its answer came, so
// the lanes keep sending while a commit runs instead of idling through it.
const unstoredFactor = 2

// errorPause is how long a lane waits after a store error before it tries again.
const errorPause = time.Second

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	// DB is the store the events are read from and their attempts recorded in.
	DB store.Store
	// Client makes the attempts.
	Client *Client
	// Schedule is the retry schedule; DefaultSchedule when it has no delays.
	Schedule Schedule
	// Log receives one line per store error and per shutdown.
	Log zerolog.Logger
	// PublicURL is the base of every token's issuer, without a trailing
	// slash: iss is PublicURL + "/" + customerId + "/webhooks".
	PublicURL string
	// MaxInFlight bounds the attempts in flight overall; DefaultMaxInFlight when zero.
	MaxInFlight int
	// MaxPerEndpoint bounds the attempts in flight per subscription;
	// DefaultMaxPerEndpoint when zero.
	MaxPerEndpoint int
	// Rand supplies the retry jitter; nil uses the global source.
	Rand *rand.Rand
	// Grace is how long Close lets attempts in flight finish; DefaultGrace when zero.
	Grace time.Duration
	// Rescan is how often the store is searched for due events that no
	// Notify announced (retries, events of a previous run); DefaultRescan
	// when zero.
	Rescan time.Duration
	// KeyRefresh is how long a customer's signing key is used before the
	// store is asked again (a rotation takes effect within it);
	// DefaultKeyRefresh when zero.
	KeyRefresh time.Duration
	// AutoDisableAfter disables a subscription whose every attempt has
	// failed for this long; zero turns it off (callers pass
	// DefaultAutoDisableAfter for the default). A 410 Gone answer disables
	// the subscription at once in any case.
	AutoDisableAfter time.Duration
	// Registerer receives the delivery metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Dispatcher delivers the store's due events. Each subscription with due
// work gets a lane, a goroutine that reads the subscription's due events,
// runs up to MaxPerEndpoint attempts at once under the overall MaxInFlight
// bound, sleeps until the next due time or a Notify, and exits when the
// subscription has nothing due soon. A slow or failing endpoint therefore
// holds only its own lane's slots.
//
// The dispatcher's clock is the store's (bolt.Options.Now): due times,
// retry times and the key refresh read DB.Now, so a test with a store
// clock moves them all; only its timers wait in real time, and a Notify
// makes a lane read what fell due at once.
//
// The state "executing" is not stored: an attempt in flight leaves its event
// awaiting in the store (InFlight reports it), so an attempt cut short by a
// crash is simply made again after the restart.
type Dispatcher struct {
	o   DispatcherOptions
	sem chan struct{} // a slot per attempt from its start until its outcome is stored (or it was cut)
	// sending holds a slot per exchange with an endpoint: MaxInFlight of
	// them, while sem has unstoredFactor times as many, so that the next
	// attempts start while the outcomes of the last wait for their commit.
	sending chan struct{}
	subs    subCache
	keys    keyCache
	claim   sync.Pool // *[]byte claim buffers
	m       *dispatcherMetrics

	randMu sync.Mutex

	mu      sync.Mutex
	lanes   map[uuid.UUID]*lane
	started bool
	closed  bool

	stop           chan struct{}   // closed when the dispatcher stops taking work
	results        chan outcome    // attempts' outcomes, to the recorder
	work           chan attemptJob // unbuffered: an attempt for an idle worker
	drained        chan struct{}   // closed by Close once no attempt is left: stops the recorder and the workers
	recorderWG     sync.WaitGroup
	workersWG      sync.WaitGroup
	workersStarted atomic.Int64
	recordFailing  atomic.Bool // the store refused the last write of outcomes
	attemptCtx     context.Context
	cancelAttempts context.CancelFunc
	lanesWG        sync.WaitGroup // lanes and the rescan loop
}

// NewDispatcher returns a Dispatcher; Start sets it going.
func NewDispatcher(o DispatcherOptions) *Dispatcher {
	if len(o.Schedule.Delays) == 0 {
		o.Schedule = DefaultSchedule()
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxPerEndpoint <= 0 {
		o.MaxPerEndpoint = DefaultMaxPerEndpoint
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Rescan <= 0 {
		o.Rescan = DefaultRescan
	}
	if o.KeyRefresh <= 0 {
		o.KeyRefresh = DefaultKeyRefresh
	}
	d := &Dispatcher{
		o:       o,
		sem:     make(chan struct{}, unstoredFactor*o.MaxInFlight),
		sending: make(chan struct{}, o.MaxInFlight),
		lanes:   map[uuid.UUID]*lane{},
		stop:    make(chan struct{}),
		m:       newDispatcherMetrics(o.Registerer, o.Log),
		// One place per attempt holding a slot of sem: an attempt never
		// waits to hand over its outcome.
		results: make(chan outcome, unstoredFactor*o.MaxInFlight),
		work:    make(chan attemptJob),
		drained: make(chan struct{}),
	}
	d.subs.m = map[uuid.UUID]subEntry{}
	d.keys.m = map[keyOf]*keyEntry{}
	d.claim.New = func() any { b := make([]byte, 0, 1024); return &b }
	d.attemptCtx, d.cancelAttempts = context.WithCancel(context.Background())
	return d
}

// Start seeds lanes for every subscription with due events and starts the
// periodic rescan. Ending ctx stops taking work and cuts the attempts in
// flight at once (they are made again at the next start); Close is the
// graceful stop and must be called in either case.
func (d *Dispatcher) Start(ctx context.Context) {
	d.mu.Lock()
	if d.started || d.closed {
		d.mu.Unlock()
		return
	}
	d.started = true
	d.lanesWG.Add(1)
	d.recorderWG.Add(1)
	d.mu.Unlock()
	go d.recordLoop()
	go func() {
		select {
		case <-ctx.Done():
			d.cancelAttempts()
			d.shutdown()
		case <-d.attemptCtx.Done():
		}
	}()
	go d.rescanLoop()
}

// rescanLoop notifies the subscriptions whose events fall due, at start
// and every Rescan, until the dispatcher stops.
func (d *Dispatcher) rescanLoop() {
	defer d.lanesWG.Done()
	t := time.NewTicker(d.o.Rescan)
	defer t.Stop()
	for {
		d.rescan()
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
	}
}

func (d *Dispatcher) rescan() {
	due, err := d.o.DB.DueSubscriptions()
	if err != nil {
		d.o.Log.Error().Err(err).Msg("read due subscriptions")
		return
	}
	horizon := d.o.DB.Now().Add(d.o.Rescan)
	for id, at := range due {
		if !at.After(horizon) {
			d.Notify(id)
		}
	}
}

// Notify tells the dispatcher that the subscriptions have new due events,
// so that their delivery starts at once. It never blocks for long.
func (d *Dispatcher) Notify(subIDs ...uuid.UUID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started || d.closed {
		return
	}
	for _, id := range subIDs {
		if l, ok := d.lanes[id]; ok {
			l.read()
			continue
		}
		l := &lane{id: id, wake: make(chan struct{}, 1), inflight: map[uint64]struct{}{}, refill: max(d.o.MaxPerEndpoint/2, 1)}
		d.lanes[id] = l
		d.lanesWG.Add(1)
		go d.runLane(l)
	}
}

// InFlight reports whether an attempt of event seq of subscription sub is
// under way: the event's state is then "executing".
func (d *Dispatcher) InFlight(sub uuid.UUID, seq uint64) bool {
	d.mu.Lock()
	l := d.lanes[sub]
	d.mu.Unlock()
	return l != nil && l.has(seq)
}

// Close stops taking work, lets the attempts in flight finish for up to
// Grace and records their outcomes, then cuts the rest (not recorded: they
// are made again at the next start) and returns once every goroutine of the
// dispatcher has exited. The store must stay open until Close returns.
func (d *Dispatcher) Close() {
	d.shutdown()
	done := make(chan struct{})
	go func() { d.lanesWG.Wait(); close(done) }()
	t := time.NewTimer(d.o.Grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		d.o.Log.Warn().Dur("grace", d.o.Grace).Msg("delivery attempts still in flight at the end of the grace period were cut")
		d.cancelAttempts()
		<-done
	}
	d.cancelAttempts()
	// No attempt is left: every outcome handed over has been stored, and
	// every worker is idle.
	d.mu.Lock()
	select {
	case <-d.drained:
	default:
		close(d.drained)
	}
	d.mu.Unlock()
	d.recorderWG.Wait()
	d.workersWG.Wait()
}

// shutdown stops taking work: no lane starts another attempt.
func (d *Dispatcher) shutdown() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	close(d.stop)
	for _, l := range d.lanes {
		l.signal()
	}
}

func (d *Dispatcher) stopping() bool {
	select {
	case <-d.stop:
		return true
	default:
		return false
	}
}

// lane is the delivery goroutine of one subscription.
type lane struct {
	id   uuid.UUID
	wake chan struct{} // capacity 1: a Notify or a finished attempt

	mu       sync.Mutex
	inflight map[uint64]struct{} // attempted, outcome not yet stored
	sending  int                 // of inflight, those whose exchange runs
	refill   int                 // an exchange ending wakes the lane once sending is down to this
	// full is set when the lane's last round stopped at its capacity
	// (more may be due): an exchange or attempt that ends wakes it to
	// read again. Otherwise that round took everything due, and only a
	// Notify, an event due again (a retry) or the end of its last
	// attempt (to retire) wake it.
	full bool

	// mustRead asks the next round to read the due events: set with
	// every wake but the one of the lane's last attempt ending, which
	// lets a lane with nothing more due retire without a read.
	mustRead atomic.Bool
	parked   atomic.Bool // waiting for a wake signal or its timer
}

func (l *lane) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// read wakes l for a round that reads its due events.
func (l *lane) read() {
	l.mustRead.Store(true)
	l.signal()
}

// setFull records whether l's round stopped at its capacity.
func (l *lane) setFull(full bool) {
	l.mu.Lock()
	l.full = full
	l.mu.Unlock()
}

func (l *lane) has(seq uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.inflight[seq]
	return ok
}

// snapshot returns a copy of the in-flight set.
func (l *lane) snapshot() map[uint64]struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[uint64]struct{}, len(l.inflight))
	for seq := range l.inflight {
		m[seq] = struct{}{}
	}
	return m
}

func (l *lane) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.inflight)
}

// free returns how many attempts l may start: its exchanges are bounded
// by perEndpoint, its attempts whose outcome is not yet stored by
// unstoredFactor times that.
func (l *lane) free(perEndpoint int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return min(perEndpoint-l.sending, unstoredFactor*perEndpoint-len(l.inflight))
}

func (l *lane) add(seq uint64) {
	l.mu.Lock()
	l.inflight[seq] = struct{}{}
	l.sending++
	l.mu.Unlock()
}

// sent ends an exchange; the attempt stays in flight until done. The lane
// is woken once half its exchanges ended, so that a round starts several
// attempts rather than one per ended exchange.
func (l *lane) sent() {
	l.mu.Lock()
	l.sending--
	wake := l.full && l.sending <= l.refill
	l.mu.Unlock()
	if wake {
		l.read()
	}
}

// done ends the attempt of event seq; due tells that the event may be due
// again (a retry, or an attempt cut by the shutdown).
func (l *lane) done(seq uint64, due bool) {
	l.mu.Lock()
	delete(l.inflight, seq)
	read, last := l.full || due, len(l.inflight) == 0
	l.mu.Unlock()
	switch {
	case read:
		l.read()
	case last:
		l.signal()
	}
}

// retire removes l from the dispatcher unless a Notify or an attempt is
// pending, and reports whether the lane may exit. A pending wake signal is
// taken: the round that follows a false answer reads everything that the
// signal announced, and a signal left in place would make every later
// round of an idle lane end here again without ever blocking. A signal
// that asks for no read (mustRead unset: the end of the lane's last
// attempt) does not keep the lane.
func (d *Dispatcher) retire(l *lane) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-l.wake: // a Notify's when mustRead is set, else its last attempt's end
	default:
	}
	if l.mustRead.Load() && !d.closed {
		return false
	}
	if l.count() > 0 {
		return false
	}
	delete(d.lanes, l.id)
	return true
}

// runLane is a lane's loop. It exits when the subscription has nothing due
// within Rescan and no attempt in flight, when the subscription is gone, or
// when the dispatcher stops and the lane's attempts have finished.
func (d *Dispatcher) runLane(l *lane) {
	defer d.lanesWG.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var wait time.Duration = -1 // -1: until woken
		if d.stopping() {
			if d.retire(l) {
				return
			}
		} else if idle, w := d.laneRound(l); idle {
			if d.retire(l) {
				return
			}
			continue
		} else {
			wait = w
		}
		if wait == 0 {
			continue
		}
		var tc <-chan time.Time
		if wait > 0 {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(wait)
			tc = timer.C
		}
		l.parked.Store(true)
		select {
		case <-l.wake:
		case <-tc:
			l.mustRead.Store(true)
		}
		l.parked.Store(false)
		// Woken by the end of its last attempt, with nothing due as of
		// its last round, then or later (it set no timer): the lane
		// retires without a read.
		if tc == nil && !l.mustRead.Load() && !d.stopping() && l.count() == 0 && d.retire(l) {
			return
		}
	}
}

// laneRound starts what is due for l. It reports whether the lane is idle
// (nothing in flight, nothing due within Rescan) or else how long to wait
// before the next round (0: at once, -1: until woken).
func (d *Dispatcher) laneRound(l *lane) (idle bool, wait time.Duration) {
	d.m.rounds.Inc()
	l.mustRead.Store(false) // a wake from now on asks for another round
	sub, err := d.subscription(l.id)
	if errors.Is(err, store.ErrNotFound) {
		return l.count() == 0, -1 // deleted: its events are no longer sent
	}
	if err != nil {
		d.o.Log.Error().Err(err).Str("subscriptionId", l.id.String()).Msg("read subscription")
		return false, errorPause
	}
	if !sub.Enabled {
		if err := d.failWaiting(sub.ID); err != nil {
			d.o.Log.Error().Err(err).Str("subscriptionId", l.id.String()).Msg("fail the waiting events of a disabled subscription")
			return false, errorPause
		}
		return l.count() == 0, -1
	}
	if d.recordFailing.Load() {
		// Every attempt started now would be one more event sent whose
		// outcome cannot be stored: wait for the store.
		return false, errorPause
	}
	free := l.free(d.o.MaxPerEndpoint)
	if free <= 0 {
		l.setFull(true)
		return false, -1 // an ended exchange or a stored outcome wakes the lane
	}
	now := d.o.DB.Now()
	// Skip the attempts in flight as of before the read: one that ends
	// during the read may have committed after the read's snapshot, which
	// then still shows its event due; checking l.has during the read would
	// start that event again.
	inflight := l.snapshot()
	events, next, err := d.o.DB.DueEvents(l.id, now, free, func(seq uint64) bool { _, ok := inflight[seq]; return ok })
	if err != nil {
		d.o.Log.Error().Err(err).Str("subscriptionId", l.id.String()).Msg("read due events")
		return false, errorPause
	}
	for i := range events {
		select {
		case d.sem <- struct{}{}:
		case <-d.stop:
			return false, -1
		}
		select {
		case d.sending <- struct{}{}:
		case <-d.stop:
			<-d.sem
			return false, -1
		}
		l.add(events[i].Seq)
		d.startAttempt(attemptJob{lane: l, sub: sub, event: events[i]})
	}
	l.setFull(len(events) == free)
	switch {
	case len(events) == free:
		return false, -1 // at capacity: an ended exchange or a stored outcome wakes the lane
	case next.IsZero():
		return l.count() == 0, -1
	}
	w := next.Sub(now)
	if w > d.o.Rescan && l.count() == 0 {
		return true, 0 // the rescan brings it back in time
	}
	return false, max(w, time.Millisecond)
}

// failWaiting fails every waiting event of a disabled subscription.
func (d *Dispatcher) failWaiting(sub uuid.UUID) error {
	for !d.stopping() {
		n, err := d.o.DB.FailWaiting(sub, store.FailWaitingBatch)
		if err != nil || n < store.FailWaitingBatch {
			return err
		}
	}
	return nil
}

// subCache keeps subscriptions as of the store's SubscriptionsVersion.
type subCache struct {
	mu      sync.Mutex
	version uint64
	m       map[uuid.UUID]subEntry
}

type subEntry struct {
	sub store.Subscription
	err error
}

// subscription returns the subscription id, ErrNotFound once deleted.
func (d *Dispatcher) subscription(id uuid.UUID) (store.Subscription, error) {
	c := &d.subs
	v := d.o.DB.SubscriptionsVersion()
	c.mu.Lock()
	if c.version != v {
		clear(c.m)
		c.version = v
	}
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return e.sub, e.err
	}
	s, err := d.o.DB.SubscriptionByID(id)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		c.mu.Lock()
		if c.version == v {
			c.m[id] = subEntry{sub: s, err: err}
		}
		c.mu.Unlock()
	}
	return s, err
}
