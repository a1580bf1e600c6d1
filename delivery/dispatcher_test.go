package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hookd/store/bolt"
	"io"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"hookd/store"
)

// dispatchEnv is a store with one customer and a running dispatcher.
type dispatchEnv struct {
	t        *testing.T
	db       *bolt.DB
	d        *Dispatcher
	customer uuid.UUID
	key      SigningKey // the customer's current key
	closed   bool
}

// fastSchedule retries after 20 ms and 40 ms, without jitter.
var fastSchedule = Schedule{Delays: []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond}}

// newDispatchEnv opens a store (checked at cleanup), creates a customer and
// starts a dispatcher with o (DB, Client and PublicURL filled in when unset).
func newDispatchEnv(t *testing.T, o DispatcherOptions, co ClientOptions) *dispatchEnv {
	t.Helper()
	return newDispatchEnvAt(t, nil, o, co)
}

// testClock is a store clock that moves only when the test moves it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newDispatchEnvAt is newDispatchEnv on a store whose clock is clk (the
// wall clock when nil).
func newDispatchEnvAt(t *testing.T, clk *testClock, o DispatcherOptions, co ClientOptions) *dispatchEnv {
	t.Helper()
	so := bolt.Options{NoSync: true}
	if clk != nil {
		so.Now = clk.Now
	}
	return newDispatchEnvStore(t, so, o, co)
}

// newDispatchEnvStore is newDispatchEnv on a store opened with so.
func newDispatchEnvStore(t *testing.T, so bolt.Options, o DispatcherOptions, co ClientOptions) *dispatchEnv {
	t.Helper()
	db, err := bolt.Open(t.TempDir(), so)
	if err != nil {
		t.Fatal(err)
	}
	env := &dispatchEnv{t: t, db: db, customer: uuid.New(), key: testKey(t, 0)}
	der0, err := MarshalKey(testKey(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	der1, _ := MarshalKey(testKey(t, 1))
	ks := store.KeySet{KeyTriple: store.KeyTriple{Previous: store.StoredKey{ID: testKey(t, 1).ID, DER: der1}, Current: store.StoredKey{ID: env.key.ID, DER: der0}, Next: store.StoredKey{ID: testKey(t, 1).ID, DER: der1}}}
	if _, err := db.CreateClient(env.customer, uuid.New(), store.HashSecret("s"), func() (store.KeySet, error) { return ks, nil }); err != nil {
		t.Fatal(err)
	}
	o.DB = db
	if o.Client == nil {
		o.Client = devClient(t, co)
	}
	if o.PublicURL == "" {
		o.PublicURL = "https://hooks.example"
	}
	if len(o.Schedule.Delays) == 0 {
		o.Schedule = fastSchedule
	}
	if o.Grace == 0 {
		o.Grace = 5 * time.Second
	}
	o.Log = zerolog.Nop()
	env.d = NewDispatcher(o)
	env.d.Start(context.Background())
	t.Cleanup(func() {
		env.close()
		if err := db.Check(); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		db.Close()
	})
	return env
}

func (env *dispatchEnv) close() {
	if !env.closed {
		env.closed = true
		env.d.Close()
	}
}

func (env *dispatchEnv) addSub(endpoint string) store.Subscription {
	env.t.Helper()
	now := env.db.Now()
	s := store.Subscription{ID: uuid.New(), CustomerID: env.customer, Title: "s-" + uuid.NewString()[:8], Endpoint: endpoint,
		Events: []string{"entityCreated"}, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := env.db.CreateSubscription(s, 0); err != nil {
		env.t.Fatal(err)
	}
	return s
}

func (env *dispatchEnv) setEnabled(s store.Subscription, on bool) {
	env.t.Helper()
	if _, _, err := env.db.UpdateSubscription(s.CustomerID, s.ID, func(x *store.Subscription) error { x.Enabled = on; return nil }); err != nil {
		env.t.Fatal(err)
	}
}

// post records n events for s and notifies the dispatcher.
func (env *dispatchEnv) post(s store.Subscription, n int) []store.Added {
	env.t.Helper()
	var evs []store.NewEvent
	var ds []store.Delivery
	for i := range n {
		evs = append(evs, store.NewEvent{Type: "entityCreated", Txn: uuid.NewString(), Toe: 1700000000 + int64(i), Payload: []byte(`{"sub":"u` + strconv.Itoa(i) + `"}`)})
		ds = append(ds, store.Delivery{SubscriptionID: s.ID, Event: i})
	}
	added, err := env.db.AddEvents(evs, ds)
	if err != nil {
		env.t.Fatal(err)
	}
	env.d.Notify(s.ID)
	return added
}

func (env *dispatchEnv) event(s store.Subscription, id uuid.UUID) store.Event {
	env.t.Helper()
	e, err := env.db.Event(s.CustomerID, s.ID, id)
	if err != nil {
		env.t.Fatal(err)
	}
	return e
}

// waitState waits up to 5 s for event id of s to reach state.
func (env *dispatchEnv) waitState(s store.Subscription, id uuid.UUID, state store.State) store.Event {
	env.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e := env.event(s, id)
		if e.State == state {
			return e
		}
		if time.Now().After(deadline) {
			env.t.Fatalf("event %s: got state %s after 5s, want %s; history %+v", id, e.State, state, e.History)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listener is an httptest endpoint that records the tokens it receives.
type listener struct {
	URL     string
	mu      sync.Mutex
	tokens  []string
	times   []time.Time
	active  atomic.Int32
	peak    atomic.Int32
	handler func(n int, w http.ResponseWriter, r *http.Request) // n: 1-based request number
}

func newListener(t *testing.T, h func(n int, w http.ResponseWriter, r *http.Request)) *listener {
	t.Helper()
	l := &listener{handler: h}
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != ContentType {
			http.Error(w, "bad content type "+r.Header.Get("Content-Type"), http.StatusUnsupportedMediaType)
			return
		}
		cur := l.active.Add(1)
		defer l.active.Add(-1)
		for {
			p := l.peak.Load()
			if cur <= p || l.peak.CompareAndSwap(p, cur) {
				break
			}
		}
		l.mu.Lock()
		l.tokens = append(l.tokens, string(body))
		l.times = append(l.times, time.Now())
		n := len(l.tokens)
		l.mu.Unlock()
		if l.handler != nil {
			l.handler(n, w, r)
		}
	})
	l.URL = srv.URL + "/hook"
	return l
}

func (l *listener) received() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tokens...)
}

func statusHandler(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func TestDispatcherDeliversSignedToken(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{}, ClientOptions{UserAgent: "hookd/test"})
	l := newListener(t, statusHandler(http.StatusAccepted))
	s := env.addSub(l.URL)
	a := env.post(s, 1)[0]
	e := env.waitState(s, a.ID, store.Success)

	toks := l.received()
	if len(toks) != 1 || toks[0] != e.JWS {
		t.Fatalf("got %d tokens, want 1 equal to the stored one", len(toks))
	}
	payload, err := Verify(toks[0], &env.key.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Iss    string                     `json:"iss"`
		Iat    int64                      `json:"iat"`
		Jti    string                     `json:"jti"`
		Aud    []string                   `json:"aud"`
		Txn    string                     `json:"txn"`
		Toe    int64                      `json:"toe"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	want := "https://hooks.example/" + env.customer.String() + "/webhooks"
	if c.Iss != want || c.Iat != e.CreatedAt.Unix() || c.Jti != a.ID.String() || len(c.Aud) != 1 || c.Aud[0] != l.URL ||
		c.Txn != e.Txn || c.Toe != e.Toe || string(c.Events["entityCreated"]) != `{"sub":"u0"}` {
		t.Errorf("got claims %s, want iss %s, jti %s, aud [%s] and the event", payload, want, a.ID, l.URL)
	}
	if e.Attempts != 1 || e.Response == nil || e.Response.StatusCode != http.StatusAccepted {
		t.Errorf("got attempts %d response %+v, want 1 and 202", e.Attempts, e.Response)
	}
	states := []store.State{store.AwaitingExecuting, store.Executing, store.Success}
	for i, h := range e.History {
		if i >= len(states) || h.State != states[i] {
			t.Fatalf("got history %+v, want states %v", e.History, states)
		}
	}
}

func TestDispatcherRetriesWithTheSameToken(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{}, ClientOptions{})
	l := newListener(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	s := env.addSub(l.URL)
	a := env.post(s, 1)[0]
	e := env.waitState(s, a.ID, store.Success)
	toks := l.received()
	if len(toks) != 3 || toks[0] != toks[1] || toks[1] != toks[2] {
		t.Fatalf("got %d tokens (equal: %v), want 3 equal ones", len(toks), len(toks) == 3 && toks[0] == toks[2])
	}
	if e.Attempts != 3 {
		t.Errorf("got %d attempts, want 3", e.Attempts)
	}
	var retries int
	for _, h := range e.History {
		if h.State == store.AwaitingRetry {
			retries++
			if h.StatusCode != 500 || h.Reason != "status 500" {
				t.Errorf("got retry row %+v, want status 500", h)
			}
		}
	}
	if retries != 2 {
		t.Errorf("got %d awaiting-retry rows, want 2", retries)
	}
}

func TestDispatcherOutcomes(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{}, ClientOptions{})
	target := newListener(t, nil)
	cases := []struct {
		name     string
		handler  func(int, http.ResponseWriter, *http.Request)
		attempts int
		state    store.State
	}{
		{"redirect fails at once", func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
		}, 1, store.Failure},
		{"4xx retried until the schedule is spent", statusHandler(http.StatusBadRequest), 3, store.Failure},
		{"connection refused retried", nil, 3, store.Failure},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := "http://127.0.0.1:1/refused"
			if c.handler != nil {
				url = newListener(t, c.handler).URL
			}
			s := env.addSub(url)
			a := env.post(s, 1)[0]
			e := env.waitState(s, a.ID, c.state)
			if e.Attempts != c.attempts {
				t.Errorf("got %d attempts, want %d", e.Attempts, c.attempts)
			}
		})
	}
	if n := len(target.received()); n != 0 {
		t.Errorf("the redirect target got %d requests, want 0", n)
	}
}

// TestDispatcherHonoursRetryAfter: the retry is due at the Retry-After
// (1 s, longer than the schedule's 20 ms) and is not made before it. The
// store's clock stands still until the test moves it; a Notify makes the
// lane look at once.
func TestDispatcherHonoursRetryAfter(t *testing.T) {
	clk := newTestClock()
	env := newDispatchEnvAt(t, clk, DispatcherOptions{Rescan: 10 * time.Minute}, ClientOptions{})
	l := newListener(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	s := env.addSub(l.URL)
	first := clk.Now()
	a := env.post(s, 1)[0]
	e := env.waitState(s, a.ID, store.AwaitingRetry)
	if want := first.Add(time.Second); !e.DueAt.Equal(want) {
		t.Errorf("got the retry due at %v, want %v: the 1 s Retry-After after the first attempt", e.DueAt, want)
	}

	// Just before the due time a round starts nothing.
	clk.Add(999 * time.Millisecond)
	env.round(s)
	if got := len(l.received()); got != 1 {
		t.Errorf("got %d requests 999 ms after the first, want 1: the retry waits for its Retry-After", got)
	}
	clk.Add(time.Millisecond)
	env.d.Notify(s.ID)
	e = env.waitState(s, a.ID, store.Success)
	if got := e.History[len(e.History)-1].At; got.Before(first.Add(time.Second)) {
		t.Errorf("got the retry recorded at %v, want at or after %v", got, first.Add(time.Second))
	}
	if got := len(l.received()); got != 2 {
		t.Errorf("got %d requests, want 2", got)
	}
}

func TestDispatcherIsolatesHangingEndpoint(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{MaxPerEndpoint: 2, Grace: 100 * time.Millisecond}, ClientOptions{Timeout: 3 * time.Second})
	hang := newHangingServer(t, "")
	slow := env.addSub(hang.URL)
	stuck := env.post(slow, 10)
	time.Sleep(50 * time.Millisecond)

	l := newListener(t, nil)
	healthy := env.addSub(l.URL)
	start := time.Now()
	for _, a := range env.post(healthy, 20) {
		env.waitState(healthy, a.ID, store.Success)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("healthy deliveries took %v next to a hanging endpoint, want well under 1s", took)
	}
	inflight := 0
	for _, a := range stuck {
		if env.d.InFlight(slow.ID, store.EventSeq(a.ID)) {
			inflight++
		}
	}
	if inflight != 2 {
		t.Errorf("got %d attempts in flight to the hanging endpoint, want MaxPerEndpoint 2", inflight)
	}
	// Close cuts the hanging attempts after the grace; they are not recorded.
	env.close()
	for _, a := range stuck {
		if e := env.event(slow, a.ID); e.State != store.AwaitingExecuting || e.Attempts != 0 {
			t.Errorf("cut attempt: got %s attempts %d, want awaiting-executing 0", e.State, e.Attempts)
		}
	}
}

func TestDispatcherBoundsConcurrency(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{MaxPerEndpoint: 3}, ClientOptions{})
	l := newListener(t, func(int, http.ResponseWriter, *http.Request) { time.Sleep(20 * time.Millisecond) })
	s := env.addSub(l.URL)
	added := env.post(s, 15)
	for _, a := range added {
		env.waitState(s, a.ID, store.Success)
	}
	if p := l.peak.Load(); p > 3 || p < 2 {
		t.Errorf("got at most %d concurrent requests, want 2 to 3 (MaxPerEndpoint 3)", p)
	}
}

func TestDispatcherDisableAndEnable(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{MaxPerEndpoint: 2}, ClientOptions{})
	release := make(chan struct{})
	l := newListener(t, func(int, http.ResponseWriter, *http.Request) { <-release })
	s := env.addSub(l.URL)
	added := env.post(s, 6)
	deadline := time.Now().Add(2 * time.Second)
	for len(l.received()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	env.setEnabled(s, false)
	env.d.Notify(s.ID)
	for _, a := range added[2:] {
		env.waitState(s, a.ID, store.Failure)
	}
	late := env.post(s, 1)[0]
	if late.State != store.Failure {
		t.Errorf("got %s for an event while disabled, want failure", late.State)
	}
	close(release) // the attempts in flight finish and count
	for _, a := range added[:2] {
		env.waitState(s, a.ID, store.Success)
	}
	env.setEnabled(s, true)
	fresh := env.post(s, 1)[0]
	env.waitState(s, fresh.ID, store.Success)
	env.retired(s) // nothing left to send
	if got := len(l.received()); got != 3 {
		t.Errorf("got %d requests, want 3 (two in flight at the disable, one new)", got)
	}
	for _, a := range append(added[2:], late) {
		if e := env.event(s, a.ID); e.State != store.Failure {
			t.Errorf("after re-enable: got %s, want failure", e.State)
		}
	}
}

func TestDispatcherDeletedSubscriptionIsNotDelivered(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{MaxPerEndpoint: 1}, ClientOptions{})
	release := make(chan struct{})
	l := newListener(t, func(int, http.ResponseWriter, *http.Request) { <-release })
	s := env.addSub(l.URL)
	env.post(s, 5)
	deadline := time.Now().Add(2 * time.Second)
	for len(l.received()) < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := env.db.DeleteSubscription(s.CustomerID, s.ID); err != nil {
		t.Fatal(err)
	}
	close(release)
	env.retired(s) // the attempt in flight has ended and the lane found the subscription gone
	if got := len(l.received()); got != 1 {
		t.Errorf("got %d requests, want only the one in flight at the delete", got)
	}
}

func TestDispatcherCloseLetsAttemptsFinish(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{}, ClientOptions{})
	l := newListener(t, func(int, http.ResponseWriter, *http.Request) { time.Sleep(150 * time.Millisecond) })
	s := env.addSub(l.URL)
	a := env.post(s, 1)[0]
	deadline := time.Now().Add(2 * time.Second)
	for !env.d.InFlight(s.ID, store.EventSeq(a.ID)) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	env.close()
	if e := env.event(s, a.ID); e.State != store.Success {
		t.Errorf("got %s after Close, want success: Close waits for attempts in flight", e.State)
	}
	env.d.Notify(s.ID) // ignored after Close
}

func TestDispatcherStartFindsStoredEvents(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{Rescan: 20 * time.Millisecond}, ClientOptions{})
	l := newListener(t, nil)
	s := env.addSub(l.URL)
	// Recorded without Notify, as after a restart: the rescan finds them.
	_, err := env.db.AddEvents([]store.NewEvent{{Type: "entityCreated", Payload: []byte(`{}`)}}, []store.Delivery{{SubscriptionID: s.ID}})
	if err != nil {
		t.Fatal(err)
	}
	evs, _, _ := env.db.Events(s.CustomerID, s.ID, store.EventQuery{Limit: 1})
	env.waitState(s, evs[0].ID, store.Success)
}

func TestDispatcherTestNotification(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{}, ClientOptions{})
	l := newListener(t, statusHandler(http.StatusNoContent))
	s := env.addSub(l.URL)
	code, ok, err := env.d.Test(context.Background(), s)
	if err != nil || code != http.StatusNoContent || !ok {
		t.Fatalf("got %d %v %v, want 204 true nil", code, ok, err)
	}
	toks := l.received()
	payload, err := Verify(toks[0], &env.key.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]json.RawMessage
	_ = json.Unmarshal(payload, &c)
	var jti string
	_ = json.Unmarshal(c["jti"], &jti)
	if _, has := c["txn"]; has || string(c["events"]) != `{"test":{"id":"`+jti+`"}}` {
		t.Errorf("got claims %s, want events {\"test\":{\"id\":jti}} and no txn", payload)
	}

	bad := env.addSub(newListener(t, statusHandler(http.StatusInternalServerError)).URL)
	if code, ok, err := env.d.Test(context.Background(), bad); err != nil || code != 500 || ok {
		t.Errorf("got %d %v %v, want 500 false nil", code, ok, err)
	}
}

// TestAttemptWorkersAreReused: attempts made one after another run on the
// same worker rather than a goroutine each, and Close stops the workers.
func TestAttemptWorkersAreReused(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{}, ClientOptions{})
	s := env.addSub(newListener(t, statusHandler(http.StatusNoContent)).URL)
	for range 20 {
		a := env.post(s, 1)[0]
		env.waitState(s, a.ID, store.Success)
	}
	// Mostly 1: a worker that the scheduler has not brought back to its
	// queue when the next attempt starts makes another one start.
	if n := env.d.workersStarted.Load(); n > 5 {
		t.Errorf("workers started for 20 attempts made one after another: got %d, want at most 5", n)
	}
	done := make(chan struct{})
	go func() { env.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(workerIdle / 2): // well before an idle worker would leave by itself
		t.Fatal("Close did not return: a worker is still running")
	}
}

// round notifies s's lane and waits until it has run a round and parked
// again (or retired), so that whatever that round started is under way.
func (env *dispatchEnv) round(s store.Subscription) {
	env.t.Helper()
	before := testutil.ToFloat64(env.d.m.rounds)
	env.d.Notify(s.ID)
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(env.d.m.rounds) == before {
		if time.Now().After(deadline) {
			env.t.Fatal("no lane round within 5s of a Notify")
		}
		time.Sleep(time.Millisecond)
	}
	env.quiet()
}

// retired waits up to 5 s until s has no lane: nothing in flight and
// nothing due that the lane could send.
func (env *dispatchEnv) retired(s store.Subscription) {
	env.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		env.d.mu.Lock()
		_, ok := env.d.lanes[s.ID]
		env.d.mu.Unlock()
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			env.t.Fatalf("subscription %s still has a lane after 5s", s.ID)
		}
		time.Sleep(time.Millisecond)
	}
}

// quiet waits up to 5 s until every lane of d has either retired or is
// parked (blocked until a wake signal or its timer), and returns the lanes
// still there. A lane that loops without blocking never gets there.
func (env *dispatchEnv) quiet() map[uuid.UUID]*lane {
	env.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		env.d.mu.Lock()
		lanes := maps.Clone(env.d.lanes)
		env.d.mu.Unlock()
		busy := 0
		for _, l := range lanes {
			if !l.parked.Load() {
				busy++
			}
		}
		if busy == 0 {
			return lanes
		}
		if time.Now().After(deadline) {
			env.t.Fatalf("%d of %d lanes still running after 5s with nothing to do", busy, len(lanes))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleDispatcherStopsReading sends bursts to healthy, failing,
// disabled, deleted and far-retrying subscriptions, and checks that once
// their work is done the lanes stop reading the store: finished lanes
// retire and rescans that find nothing due start no round. Then a burst to
// a hanging subscription leaves its lane parked at capacity; a shutdown
// with the hanging attempts in flight starts no round either. (The hanging
// burst comes after the rescans: its waiting events are due, so a rescan
// rightly wakes its lane.)
func TestIdleDispatcherStopsReading(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{MaxPerEndpoint: 4, Rescan: 10 * time.Minute}, ClientOptions{})
	release := make(chan struct{})
	healthy := env.addSub(newListener(t, statusHandler(http.StatusNoContent)).URL)
	failing := env.addSub(newListener(t, statusHandler(http.StatusInternalServerError)).URL)
	later := env.addSub(newListener(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
	}).URL)
	hang := newListener(t, func(int, http.ResponseWriter, *http.Request) { <-release })
	hanging := env.addSub(hang.URL)
	disabled := env.addSub(newListener(t, statusHandler(http.StatusNoContent)).URL)
	deleted := env.addSub(newListener(t, statusHandler(http.StatusNoContent)).URL)
	t.Cleanup(func() { close(release) }) // before the listeners close: cleanups run last first

	env.setEnabled(disabled, false)
	dis := env.post(disabled, 50)
	if err := env.db.DeleteSubscription(deleted.CustomerID, deleted.ID); err != nil {
		t.Fatal(err)
	}
	env.post(deleted, 50)
	ok := env.post(healthy, 500)
	bad := env.post(failing, 20)
	slow := env.post(later, 20)
	for _, a := range ok {
		env.waitState(healthy, a.ID, store.Success)
	}
	for _, a := range bad {
		env.waitState(failing, a.ID, store.Failure)
	}
	for _, a := range slow {
		env.waitState(later, a.ID, store.AwaitingRetry)
	}
	for _, a := range dis {
		env.waitState(disabled, a.ID, store.Failure)
	}

	// An attempt's outcome is in the store a moment before the attempt
	// ends in its lane (release): each lane may still be parked on its
	// last attempts when their states are read, and retires then.
	for _, s := range []store.Subscription{healthy, failing, later, disabled, deleted} {
		env.retired(s)
	}
	if lanes := env.quiet(); len(lanes) != 0 {
		t.Errorf("got %d lanes left, want none", len(lanes))
	}
	rounds := testutil.ToFloat64(env.d.m.rounds)
	env.d.rescan() // nothing due within the rescan period: no lane starts
	env.d.rescan()
	env.quiet()
	if got := testutil.ToFloat64(env.d.m.rounds); got != rounds {
		t.Errorf("idle dispatcher: %v lane rounds after two rescans, want none", got-rounds)
	}

	env.post(hanging, 20)
	// Wait for MaxPerEndpoint attempts in flight; signing is slow under the
	// race detector.
	deadline := time.Now().Add(30 * time.Second)
	for len(hang.received()) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("got %d requests at the hanging endpoint after 30s, want 4", len(hang.received()))
		}
		time.Sleep(time.Millisecond)
	}
	if lanes := env.quiet(); len(lanes) != 1 || lanes[hanging.ID] == nil {
		t.Errorf("got %d lanes left, want only the hanging subscription's", len(lanes))
	}

	env.d.shutdown() // the hanging attempts keep the lane until they end
	env.quiet()
	rounds = testutil.ToFloat64(env.d.m.rounds)
	env.quiet()
	if got := testutil.ToFloat64(env.d.m.rounds); got != rounds {
		t.Errorf("shutting down: %v lane rounds while parked, want none", got-rounds)
	}
}

// TestDispatcherRereadsKeysAfterKeyRefresh: after a rotation the current
// key signs until KeyRefresh has passed on the store's clock, then the
// rotated one does.
func TestDispatcherRereadsKeysAfterKeyRefresh(t *testing.T) {
	clk := newTestClock()
	env := newDispatchEnvAt(t, clk, DispatcherOptions{KeyRefresh: time.Minute}, ClientOptions{})
	l := newListener(t, nil)
	s := env.addSub(l.URL)
	deliver := func() string {
		t.Helper()
		e := env.waitState(s, env.post(s, 1)[0].ID, store.Success)
		return e.JWS
	}
	signedBy := func(tok string, k SigningKey) bool {
		_, err := Verify(tok, &k.Private.PublicKey)
		return err == nil
	}
	if tok := deliver(); !signedBy(tok, testKey(t, 0)) {
		t.Fatal("got the first token not signed with the current key 0")
	}
	der0, err := MarshalKey(testKey(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	// Next (key 1) becomes current.
	if _, err := env.db.RotateKeys(env.customer, []store.StoredKey{{ID: testKey(t, 0).ID, DER: der0}}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute - time.Millisecond)
	if tok := deliver(); !signedBy(tok, testKey(t, 0)) {
		t.Error("got a token signed with the rotated key within KeyRefresh, want key 0 until it passes")
	}
	clk.Add(time.Millisecond)
	if tok := deliver(); !signedBy(tok, testKey(t, 1)) {
		t.Error("got a token not signed with the rotated key once KeyRefresh passed, want key 1")
	}
}

// TestForgetKeysSignsWithTheRotatedKeyAtOnce: after ForgetKeys (what the
// rotate route calls), the next token is signed with the new current key
// without waiting for KeyRefresh.
func TestForgetKeysSignsWithTheRotatedKeyAtOnce(t *testing.T) {
	clk := newTestClock()
	env := newDispatchEnvAt(t, clk, DispatcherOptions{KeyRefresh: time.Hour}, ClientOptions{})
	s := env.addSub(newListener(t, nil).URL)
	deliver := func() string {
		t.Helper()
		return env.waitState(s, env.post(s, 1)[0].ID, store.Success).JWS
	}
	if _, err := Verify(deliver(), &testKey(t, 0).Private.PublicKey); err != nil {
		t.Fatalf("first token: %v, want it signed with key 0", err)
	}
	der0, err := MarshalKey(testKey(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.db.RotateKeys(env.customer, []store.StoredKey{{ID: testKey(t, 0).ID, DER: der0}}); err != nil {
		t.Fatal(err)
	}
	env.d.ForgetKeys(uuid.New()) // another customer's: changes nothing here
	if _, err := Verify(deliver(), &testKey(t, 0).Private.PublicKey); err != nil {
		t.Errorf("after forgetting another customer's keys: %v, want key 0 until KeyRefresh", err)
	}
	env.d.ForgetKeys(env.customer)
	if _, err := Verify(deliver(), &testKey(t, 1).Private.PublicKey); err != nil {
		t.Errorf("after ForgetKeys: %v, want the rotated key 1 at once", err)
	}
}

// TestDispatcherKeepsResponses: the dispatcher hands the store each
// attempt's response body and duration: the event keeps the bodies of its
// failed attempts and each attempt's end row is its duration after its
// start.
func TestDispatcherKeepsResponses(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{Schedule: fastSchedule}, ClientOptions{})
	l := newListener(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Attempt", strconv.Itoa(n))
		if n < 3 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "failure %d", n)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s := env.addSub(l.URL)
	a := env.post(s, 1)[0]
	env.waitState(s, a.ID, store.Success)
	e, ds, err := env.db.EventAttempts(s.CustomerID, s.ID, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("got details %+v, want the two failed attempts' (none for the 204 without a body)", ds)
	}
	for i, d := range ds {
		want := fmt.Sprintf("failure %d", i+1)
		if d.Attempt != i+1 || d.StatusCode != 500 || string(d.Body) != want || !slices.Contains(d.Headers, store.Header{Name: "X-Attempt", Value: strconv.Itoa(i + 1)}) {
			t.Errorf("detail %d: got %+v, want attempt %d, 500, body %q and its X-Attempt", i, d, i+1, want)
		}
	}
	var started time.Time
	for _, h := range e.History {
		switch h.State {
		case store.Executing:
			started = h.At
		case store.AwaitingRetry, store.Success:
			if d := h.At.Sub(started); d <= 0 || d > 5*time.Second {
				t.Errorf("attempt %d: got %v from start to end, want the attempt's duration", h.Attempt, d)
			}
		}
	}
}

// keysReads counts a store's KeySet calls; while gate is not nil, the
// first call counted waits for it to close; while fail is not nil, each
// returns it.
type keysReads struct {
	store.Store
	calls atomic.Int32
	gate  chan struct{}
	fail  error
}

func (k *keysReads) KeySet(customer uuid.UUID) (store.KeySet, error) {
	if k.calls.Add(1) == 1 && k.gate != nil {
		<-k.gate
	}
	if k.fail != nil {
		return store.KeySet{}, k.fail
	}
	return k.Store.KeySet(customer)
}

// TestKeyRefreshReadsOnce: once KeyRefresh has passed, one attempt reads
// the keys again while the others sign with the entry it replaces; a
// failed read lets the next attempt try again.
func TestKeyRefreshReadsOnce(t *testing.T) {
	clk := newTestClock()
	env := newDispatchEnvAt(t, clk, DispatcherOptions{}, ClientOptions{})
	keys := &keysReads{Store: env.db}
	d := NewDispatcher(DispatcherOptions{DB: keys, KeyRefresh: time.Minute, PublicURL: "https://hooks.example", Log: zerolog.Nop()})
	if _, err := d.signer(env.customer, store.AlgRS256); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	keys.calls.Store(0)
	keys.gate = make(chan struct{})
	reading := make(chan error, 1)
	go func() {
		_, err := d.signer(env.customer, store.AlgRS256)
		reading <- err
	}()
	for keys.calls.Load() == 0 {
		runtime.Gosched()
	}
	for range 20 {
		k, err := d.signer(env.customer, store.AlgRS256)
		if err != nil || k == nil {
			t.Fatalf("signer while another attempt reads the keys: %v, %v; want the entry being replaced", k, err)
		}
	}
	close(keys.gate)
	if err := <-reading; err != nil {
		t.Fatal(err)
	}
	if got := keys.calls.Load(); got != 1 {
		t.Errorf("got %d reads of the keys by 21 attempts after KeyRefresh, want 1", got)
	}
	// A failed read: the next attempt after it reads again.
	clk.Add(time.Minute)
	keys.gate, keys.fail = nil, errors.New("store unavailable")
	for i := range 2 {
		if _, err := d.signer(env.customer, store.AlgRS256); !errors.Is(err, keys.fail) {
			t.Fatalf("signer %d while the store fails: %v, want the read's error", i, err)
		}
	}
	if got := keys.calls.Load(); got != 3 {
		t.Errorf("got %d reads of the keys in all, want 3: each attempt after a failed read asks again", got)
	}
}

// TestLoneEventTakesOneRound: an event alone in its lane costs one round,
// one read of the due events. The end of its exchange and of its attempt
// wake the lane only to retire it: its round took everything due.
func TestLoneEventTakesOneRound(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{Rescan: time.Hour}, ClientOptions{})
	s := env.addSub(newListener(t, nil).URL)
	// The dispatcher's first rescan, at its start, may notify the lane of
	// the first event once more: that event is not counted.
	first := env.post(s, 1)[0]
	env.waitState(s, first.ID, store.Success)
	env.retired(s)
	for i := range 5 {
		before := testutil.ToFloat64(env.d.m.rounds)
		e := env.post(s, 1)[0]
		env.waitState(s, e.ID, store.Success)
		env.retired(s)
		if got := testutil.ToFloat64(env.d.m.rounds) - before; got != 1 {
			t.Errorf("event %d: got %v lane rounds, want 1", i, got)
		}
	}
}
