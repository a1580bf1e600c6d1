package delivery

import (
	"errors"
	"hookd/store/bolt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"hookd/store"
)

// errDiskFull is what the store's write fault returns.
var errDiskFull = errors.New("no space left on device")

// writeFault fails the store's shared writes while on and counts the
// writes it failed. It is the store's Options.WriteFault: a real bbolt
// file whose write transactions are rolled back, as on a full disk.
type writeFault struct {
	on     atomic.Bool
	failed atomic.Int64
}

func (f *writeFault) fault() error {
	if f.on.Load() {
		f.failed.Add(1)
		return errDiskFull
	}
	return nil
}

// waitFor polls cond every few milliseconds for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The outcomes of attempts that the store refuses are held and written
// again; their events are not sent again meanwhile, and once the store
// takes writes every outcome is stored and nothing more was sent.
func TestDispatcherHoldsOutcomesTheStoreRefuses(t *testing.T) {
	var f writeFault
	env := newDispatchEnvStore(t, bolt.Options{NoSync: true, WriteFault: f.fault}, DispatcherOptions{}, ClientOptions{})
	gate := make(chan struct{})
	l := newListener(t, func(int, http.ResponseWriter, *http.Request) { <-gate })
	s := env.addSub(l.URL)
	const n = 5
	added := env.post(s, n)
	waitFor(t, "the attempts in flight", func() bool { return l.active.Load() == n })

	f.on.Store(true) // the disk fills while the attempts are in flight
	close(gate)
	// The old recorder paused a second after a failed write and then let
	// the events be sent again: by the fifth refused write (about 1.5 s of
	// backoff) it had sent each event four more times.
	waitFor(t, "five refused writes", func() bool { return f.failed.Load() >= 5 })
	if got := len(l.received()); got != n {
		t.Fatalf("got %d requests while the store refused writes, want %d: each event in flight once", got, n)
	}
	if got := testutil.ToFloat64(env.d.m.held); got != n {
		t.Errorf("got %v outcomes held, want %d", got, n)
	}
	if got, want := testutil.ToFloat64(env.d.m.heldErrors), float64(f.failed.Load()); got < 5 || got > want {
		t.Errorf("got %v refused outcome writes counted, want 5 to %v", got, want)
	}
	for _, a := range added {
		if !env.d.InFlight(s.ID, store.EventSeq(a.ID)) {
			t.Errorf("event %s is not in flight while its outcome is held", a.ID)
		}
	}

	f.on.Store(false)
	for _, a := range added {
		e := env.waitState(s, a.ID, store.Success)
		if e.Attempts != 1 {
			t.Errorf("event %s: got %d attempts stored, want 1", a.ID, e.Attempts)
		}
	}
	env.close()
	if got := len(l.received()); got != n {
		t.Errorf("got %d requests in all, want %d", got, n)
	}
	if got := testutil.ToFloat64(env.d.m.held); got != 0 {
		t.Errorf("got %v outcomes held after the store recovered, want 0", got)
	}
}

// No new attempt starts while the store refuses outcomes: a retry that
// falls due then waits until the store takes writes again.
func TestDispatcherStartsNothingWhileOutcomesAreHeld(t *testing.T) {
	var f writeFault
	const retryIn = 2 * time.Second
	env := newDispatchEnvStore(t, bolt.Options{NoSync: true, WriteFault: f.fault},
		DispatcherOptions{Schedule: Schedule{Delays: []time.Duration{0, retryIn, retryIn}}}, ClientOptions{})
	gate := make(chan struct{})
	la := newListener(t, func(int, http.ResponseWriter, *http.Request) { <-gate })
	lb := newListener(t, statusHandler(http.StatusInternalServerError))
	sa, sb := env.addSub(la.URL), env.addSub(lb.URL)
	a := env.post(sa, 1)[0]
	b := env.post(sb, 1)[0]
	waitFor(t, "the attempt of a", func() bool { return la.active.Load() == 1 })
	env.waitState(sb, b.ID, store.AwaitingRetry) // b is due again retryIn later
	f.on.Store(true)
	if len(lb.received()) != 1 {
		t.Skip("b was retried before the store failed: the machine is too slow for this test")
	}
	close(gate) // a's outcome is refused: from now on no attempt starts
	// The sixth refused write comes about 3.1 s after the first, well
	// after b fell due.
	waitFor(t, "six refused writes", func() bool { return f.failed.Load() >= 6 })
	if got := len(lb.received()); got != 1 {
		t.Fatalf("got %d requests for b while the store refused writes, want 1: no attempt starts meanwhile", got)
	}
	f.on.Store(false)
	env.waitState(sa, a.ID, store.Success)
	waitFor(t, "the retry of b", func() bool { return len(lb.received()) == 2 })
}

// Close does not wait forever for outcomes the store refuses: at the end
// of the grace period they are dropped, and their events stay due for the
// next start.
func TestDispatcherCloseDropsHeldOutcomesAfterGrace(t *testing.T) {
	var f writeFault
	env := newDispatchEnvStore(t, bolt.Options{NoSync: true, WriteFault: f.fault}, DispatcherOptions{Grace: 300 * time.Millisecond}, ClientOptions{})
	l := newListener(t, nil)
	s := env.addSub(l.URL)
	a := env.post(s, 1)[0]
	f.on.Store(true)
	waitFor(t, "a refused write", func() bool { return f.failed.Load() >= 1 })
	closed := make(chan struct{})
	go func() { env.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s of a 300 ms grace period")
	}
	f.on.Store(false)
	if e := env.event(s, a.ID); e.State != store.AwaitingExecuting || e.Attempts != 0 {
		t.Errorf("got %s after %d attempts, want awaiting-executing after 0: the outcome was not stored", e.State, e.Attempts)
	}
}

// A lane keeps sending while the outcomes of its last attempts wait for
// their commit: an ended exchange frees its place among the endpoint's
// MaxPerEndpoint at once, and the attempts whose outcome is not yet stored
// are bounded by unstoredFactor times that. Each event is still sent once.
func TestLaneSendsWhileOutcomesWaitForTheirCommit(t *testing.T) {
	const perEndpoint = 2
	var hold atomic.Bool
	commit := make(chan struct{})
	env := newDispatchEnvStore(t, bolt.Options{NoSync: true, WriteFault: func() error {
		if hold.Load() {
			<-commit // the commit of the outcomes waits
		}
		return nil
	}}, DispatcherOptions{MaxPerEndpoint: perEndpoint}, ClientOptions{})
	var released sync.Once
	release := func() { hold.Store(false); released.Do(func() { close(commit) }) }
	t.Cleanup(release) // before the dispatcher's close, which stores what is held
	first := make(chan struct{})
	l := newListener(t, func(n int, _ http.ResponseWriter, _ *http.Request) {
		if n <= perEndpoint {
			<-first
		}
	})
	s := env.addSub(l.URL)
	const n = 10
	const unstored = 2 * perEndpoint // unstoredFactor 2
	added := env.post(s, n)
	waitFor(t, "the first exchanges", func() bool { return l.active.Load() == perEndpoint })
	hold.Store(true)
	close(first)
	waitFor(t, "the next exchanges while the first outcomes wait for their commit", func() bool {
		return len(l.received()) == unstored && l.active.Load() == 0
	})
	for _, a := range added {
		if e, err := env.db.Event(env.customer, s.ID, a.ID); err != nil || e.Attempts != 0 {
			t.Fatalf("event %s: got %d attempts stored (%v) while the commit waits, want 0", a.ID, e.Attempts, err)
		}
	}
	if got := len(l.received()); got != unstored {
		t.Fatalf("got %d requests while the commit waited, want %d: no more attempts than unstoredFactor × MaxPerEndpoint without a stored outcome", got, unstored)
	}
	release()
	for _, a := range added {
		if e := env.waitState(s, a.ID, store.Success); e.Attempts != 1 {
			t.Errorf("event %s: got %d attempts, want 1", a.ID, e.Attempts)
		}
	}
	env.close()
	if got := len(l.received()); got != n {
		t.Errorf("got %d requests in all, want %d: each event once", got, n)
	}
	if p := l.peak.Load(); p > perEndpoint {
		t.Errorf("got %d exchanges at once, want at most MaxPerEndpoint %d", p, perEndpoint)
	}
}
