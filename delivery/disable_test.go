package delivery

import (
	"bytes"
	"context"
	"hookd/store/bolt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"hookd/store"
)

// syncLog is a log sink safe for the dispatcher's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }

func (l *syncLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// newClockedDispatchEnv is newDispatchEnv with the store on clk and the
// dispatcher's log in log.
func newClockedDispatchEnv(t *testing.T, clk *testClock, log *syncLog, o DispatcherOptions) *dispatchEnv {
	t.Helper()
	db, err := bolt.Open(t.TempDir(), bolt.Options{NoSync: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	env := &dispatchEnv{t: t, db: db, customer: uuid.New(), key: testKey(t, 0)}
	der, err := MarshalKey(env.key)
	if err != nil {
		t.Fatal(err)
	}
	k := store.StoredKey{ID: env.key.ID, DER: der}
	if _, err := db.CreateClient(env.customer, uuid.New(), store.HashSecret("s"), func() (store.KeySet, error) {
		return store.KeySet{KeyTriple: store.KeyTriple{Previous: k, Current: k, Next: k}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	o.DB, o.Client, o.PublicURL, o.Grace = db, devClient(t, ClientOptions{}), "https://hooks.example", 5*time.Second
	o.Log = zerolog.New(log)
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

func (env *dispatchEnv) sub(s store.Subscription) store.Subscription {
	env.t.Helper()
	got, err := env.db.Subscription(s.CustomerID, s.ID)
	if err != nil {
		env.t.Fatal(err)
	}
	return got
}

func TestAutoDisableAfterEveryAttemptFailed(t *testing.T) {
	clk := &testClock{t: time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC)}
	log := &syncLog{}
	reg := prometheus.NewRegistry()
	env := newClockedDispatchEnv(t, clk, log, DispatcherOptions{
		Schedule: Schedule{Delays: []time.Duration{0}}, MaxPerEndpoint: 1,
		AutoDisableAfter: 5 * 24 * time.Hour, Registerer: reg,
	})
	s := env.addSub(newListener(t, statusHandler(http.StatusInternalServerError)).URL)
	failAll := func(n int) []store.Added {
		t.Helper()
		added := env.post(s, n)
		for _, a := range added {
			env.waitState(s, a.ID, store.Failure)
		}
		return added
	}
	failAll(1)
	clk.Add(4 * 24 * time.Hour)
	failAll(1)
	if got := env.sub(s); !got.Enabled {
		t.Fatalf("after 4 days of failures: got disabled (%q), want enabled", got.DisabledReason)
	}

	clk.Add(24 * time.Hour)
	added := failAll(3)
	got := env.sub(s)
	if got.Enabled || got.DisabledReason != store.DisabledEndpointFailing || !got.DisabledAt.Equal(clk.Now()) {
		t.Fatalf("after 5 days of failures: got enabled %v reason %q at %v, want disabled, %q at %v",
			got.Enabled, got.DisabledReason, got.DisabledAt, store.DisabledEndpointFailing, clk.Now())
	}
	// The attempt that disabled it failed with its own reason; the events
	// that waited behind it were failed by the disable, which their
	// history explains.
	for _, a := range added[1:] {
		e := env.event(s, a.ID)
		last := e.History[len(e.History)-1]
		if e.Attempts != 0 || last.Code != store.ReasonSubscriptionDisabled || !strings.Contains(last.Reason, store.DisabledEndpointFailing) {
			t.Errorf("waiting event: got %d attempts, last row %+v, want none and a subscription-disabled row naming %s", e.Attempts, last, store.DisabledEndpointFailing)
		}
	}
	if n := testutil.ToFloat64(env.d.m.disabled.WithLabelValues(store.DisabledEndpointFailing)); n != 1 {
		t.Errorf("hookd_subscriptions_disabled_total{reason=endpoint-failing}: got %v, want 1", n)
	}
	if out := log.String(); !strings.Contains(out, `"level":"warn"`) || !strings.Contains(out, `"reason":"endpoint-failing"`) {
		t.Errorf("log: got %s, want a warn line with the reason", out)
	}

	// Re-enabling clears the reason and starts a new run: one more failure
	// does not disable it again.
	env.setEnabled(s, true)
	if got := env.sub(s); got.DisabledReason != "" || !got.DisabledAt.IsZero() {
		t.Errorf("re-enabled: got reason %q at %v, want none", got.DisabledReason, got.DisabledAt)
	}
	clk.Add(time.Hour)
	failAll(1)
	if got := env.sub(s); !got.Enabled {
		t.Errorf("a failure after re-enabling: got disabled (%q), want enabled", got.DisabledReason)
	}
}

func TestAutoDisableOffAndSuccessEndsTheRun(t *testing.T) {
	clk := &testClock{t: time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC)}
	var status sync.Map
	status.Store("code", http.StatusInternalServerError)
	handler := func(_ int, w http.ResponseWriter, _ *http.Request) {
		code, _ := status.Load("code")
		w.WriteHeader(code.(int))
	}
	for _, tt := range []struct {
		name  string
		after time.Duration
		heal  bool // a success in the middle of the period
	}{{"off", 0, false}, {"a success ends the run", 24 * time.Hour, true}} {
		t.Run(tt.name, func(t *testing.T) {
			env := newClockedDispatchEnv(t, clk, &syncLog{}, DispatcherOptions{Schedule: Schedule{Delays: []time.Duration{0}}, AutoDisableAfter: tt.after})
			s := env.addSub(newListener(t, handler).URL)
			status.Store("code", http.StatusInternalServerError)
			env.waitState(s, env.post(s, 1)[0].ID, store.Failure)
			clk.Add(20 * time.Hour)
			if tt.heal {
				status.Store("code", http.StatusOK)
				env.waitState(s, env.post(s, 1)[0].ID, store.Success)
				status.Store("code", http.StatusInternalServerError)
			}
			clk.Add(20 * time.Hour)
			env.waitState(s, env.post(s, 1)[0].ID, store.Failure)
			clk.Add(20 * time.Hour)
			env.waitState(s, env.post(s, 1)[0].ID, store.Failure)
			if got := env.sub(s); !got.Enabled {
				t.Errorf("got disabled (%q), want enabled", got.DisabledReason)
			}
		})
	}
}
