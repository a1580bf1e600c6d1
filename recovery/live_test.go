package recovery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"hookd/delivery"
	"hookd/store"
)

// listener is an httptest endpoint that records the jti of each token it
// receives, in order, and holds each request until gate lets it go.
type listener struct {
	URL  string
	mu   sync.Mutex
	jtis []uuid.UUID
	gate chan struct{} // nil: answer at once
}

func newListener(t *testing.T, gate chan struct{}) *listener {
	t.Helper()
	l := &listener{gate: gate}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		parts := strings.Split(string(body), ".")
		var claims struct {
			JTI uuid.UUID `json:"jti"`
		}
		if len(parts) != 3 {
			http.Error(w, "not a JWS", http.StatusBadRequest)
			return
		}
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if json.Unmarshal(raw, &claims) != nil {
			http.Error(w, "no claims", http.StatusBadRequest)
			return
		}
		if l.gate != nil {
			select {
			case <-l.gate:
			case <-r.Context().Done():
				return
			}
		}
		l.mu.Lock()
		l.jtis = append(l.jtis, claims.JTI)
		l.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	l.URL = srv.URL + "/hook"
	return l
}

func (l *listener) received() []uuid.UUID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uuid.UUID(nil), l.jtis...)
}

// waitFor polls cond for up to 10 s: the deliveries run on real
// connections, so there is nothing to wait on but their outcome.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dispatcher starts a real dispatcher on e's store, one attempt at a time
// per subscription so that the order of deliveries is the order of due
// times.
func (e *env) dispatcher() *delivery.Dispatcher {
	e.t.Helper()
	client := delivery.NewClient(delivery.ClientOptions{Dev: true})
	e.t.Cleanup(client.Close)
	d := delivery.NewDispatcher(delivery.DispatcherOptions{DB: e.db, Client: client, PublicURL: "https://hooks.example",
		MaxPerEndpoint: 1, Grace: time.Second, Log: zerolog.Nop()})
	d.Start(context.Background())
	e.t.Cleanup(d.Close)
	return d
}

// yield lets a waiting recovery look again after a millisecond: the
// deliveries it waits for run on real connections.
func yield(ctx context.Context) error {
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Live events posted while a large recovery runs reach the listener after
// at most about one batch and the backlog bound of recovered events, not
// after the whole recovery.
func TestRecoveryLetsLiveEventsThrough(t *testing.T) {
	const (
		failed  = 300
		batch   = 20
		backlog = 5
		live    = 5
	)
	e := newEnv(t)
	l := newListener(t, nil)
	e.sub = e.moveTo(e.sub, l.URL)
	e.failed(e.sub, failed)
	d := e.dispatcher()
	r := e.runner(Options{Batch: batch, Backlog: backlog, Wait: yield, Notify: d.Notify})

	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	// Live traffic comes while the recovery is well under way.
	waitFor(t, "a third of the recovery", func() bool {
		j, _ = r.Job(e.cid, e.sub.ID, j.ID)
		return j.Requeued >= failed/3
	})
	before := len(l.received())
	liveIDs := e.post(e.sub, live)
	d.Notify(e.sub.ID)
	if j, _ = r.Job(e.cid, e.sub.ID, j.ID); j.State != Running {
		t.Fatalf("the recovery ended before the live events came: %+v", j)
	}
	waitFor(t, "the recovery and the live events", func() bool { return len(l.received()) == failed+live })
	got := l.received()
	pos := map[uuid.UUID]int{}
	for i, id := range got {
		pos[id] = i
	}
	// Before the live events: what was delivered when they came, the rest
	// of the batch then waiting (at most batch+backlog), and the live
	// events before them.
	limit := before + batch + backlog + live
	for _, id := range liveIDs {
		if p, ok := pos[id]; !ok || p >= limit {
			t.Errorf("live event %s delivered at position %d (of %d), want below %d", id, p, len(got), limit)
		}
	}
	finished(r)
	if j, _ = r.Job(e.cid, e.sub.ID, j.ID); j.State != Completed || j.Requeued != failed {
		t.Fatalf("%+v, want completed with %d", j, failed)
	}
}

// A recovery that waits on a slow listener does not hold up another
// subscription's deliveries: each subscription has its own lane.
func TestRecoveryLeavesOtherSubscriptionsAlone(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	slow := newListener(t, gate)
	fast := newListener(t, nil)
	e.sub = e.moveTo(e.sub, slow.URL)
	other := e.addSub(fast.URL)
	e.failed(e.sub, 50)
	d := e.dispatcher()
	r := e.runner(Options{Batch: 20, Backlog: 5, Wait: yield, Notify: d.Notify})
	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	ids := e.post(other, 10)
	d.Notify(other.ID)
	waitFor(t, "the other subscription's events", func() bool { return len(fast.received()) == len(ids) })
	if n := len(slow.received()); n != 0 {
		t.Fatalf("the held listener answered %d", n)
	}
	if j, _ = r.Job(e.cid, e.sub.ID, j.ID); j.State != Running || j.Requeued != 20 {
		t.Fatalf("%+v, want running with the first batch only while its listener is held", j)
	}
	close(gate)
	finished(r)
	waitFor(t, "the recovered events", func() bool { return len(slow.received()) == 50 })
}

// moveTo points s at endpoint.
func (e *env) moveTo(s store.Subscription, endpoint string) store.Subscription {
	e.t.Helper()
	_, after, err := e.db.UpdateSubscription(s.CustomerID, s.ID, func(x *store.Subscription) error { x.Endpoint = endpoint; return nil })
	if err != nil {
		e.t.Fatal(err)
	}
	return after
}

// TestRecoveryLiveEventGoesFirst: with the store's clock standing still, a
// paced recovery has one event due and the rest of its batch due later; a
// live event recorded now is delivered before all of those, by a real
// dispatcher.
func TestRecoveryLiveEventGoesFirst(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e := newEnvAt(t, clk.Now)
	l := newListener(t, nil)
	e.sub = e.moveTo(e.sub, l.URL)
	recovered := e.failed(e.sub, 10)
	d := e.dispatcher()
	r := e.runner(Options{Batch: 10, Backlog: 1000, Rate: 10, Now: clk.Now, Wait: newStepper().wait, Notify: d.Notify})
	if _, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the recovered event due now", func() bool { return len(l.received()) == 1 })
	live := e.post(e.sub, 1)
	d.Notify(e.sub.ID)
	waitFor(t, "the live event", func() bool { return len(l.received()) == 2 })
	clk.Add(time.Second) // the rest of the batch falls due
	waitFor(t, "the rest of the batch", func() bool { return len(l.received()) == 11 })
	got := l.received()
	if got[0] != recovered[0] || got[1] != live[0] {
		t.Fatalf("delivered %v, want the first recovered event, the live one %v, then the other recovered", got, live[0])
	}
}
