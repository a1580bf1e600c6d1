package recovery

import (
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"hookd/store"
)

// fakeClock is the store's and the runner's clock in the pacing tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// dueTimes returns the due times of s's waiting events, in order.
func (e *env) dueTimes(s store.Subscription) []time.Time {
	e.t.Helper()
	evs, _, err := e.db.DueEvents(s.ID, e.db.Now().Add(24*time.Hour), 10000, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	var due []time.Time
	for _, ev := range evs {
		due = append(due, ev.DueAt)
	}
	return due
}

// spaced reports whether due[from:] runs from start every every.
func spaced(due []time.Time, from int, start time.Time, every time.Duration) bool {
	for i, at := range due[from:] {
		if !at.Equal(start.Add(time.Duration(i) * every)) {
			return false
		}
	}
	return true
}

// TestRecoverySpreadsDueTimes: each batch's events fall due one after the
// other at the rate, the next batch after the previous one's last, so that
// a live event recorded meanwhile is due before the recovered events not
// yet due.
func TestRecoverySpreadsDueTimes(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e := newEnvAt(t, clk.Now)
	e.failed(e.sub, 100)
	t0 := clk.Now()
	st := newStepper()
	r := e.runner(Options{Batch: 10, Backlog: 1000, Wait: st.wait, Rate: 100, Now: clk.Now})
	j, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	<-st.ready
	due := e.dueTimes(e.sub)
	if len(due) != 10 || !spaced(due, 0, t0, 10*time.Millisecond) {
		t.Fatalf("the first batch is due at %v, want 10 from %v every 10 ms", due, t0)
	}
	// A live event recorded now goes before the nine not yet due.
	clk.Add(5 * time.Millisecond)
	live := e.post(e.sub, 1)
	evs, next, err := e.db.DueEvents(e.sub.ID, clk.Now(), 100, nil)
	if err != nil || len(evs) != 2 || evs[1].ID != live[0] || !next.Equal(t0.Add(10*time.Millisecond)) {
		t.Fatalf("due now: %d events, next %v, %v; want the first recovered and the live one, next %v", len(evs), next, err, t0.Add(10*time.Millisecond))
	}
	// The bucket's batch follows the first one's last due time.
	st.ticks <- struct{}{}
	<-st.ready
	if j, _ = r.Job(e.cid, e.sub.ID, j.ID); j.Requeued != 20 {
		t.Fatalf("requeued %d, want 20", j.Requeued)
	}
	due = e.dueTimes(e.sub)
	due = slices.DeleteFunc(due, func(at time.Time) bool { return at.Equal(clk.Now()) }) // the live event
	if len(due) != 20 || !spaced(due, 0, t0, 10*time.Millisecond) {
		t.Fatalf("two batches due at %v, want 20 from %v every 10 ms", due, t0)
	}
	// Later than the last one: the next batch starts at the clock.
	clk.Add(time.Second)
	st.ticks <- struct{}{}
	<-st.ready
	due = e.dueTimes(e.sub)
	if len(due) != 31 || !spaced(due, 21, clk.Now(), 10*time.Millisecond) {
		t.Fatalf("the third batch is due at %v, want 10 from %v every 10 ms", due[21:], clk.Now())
	}
}

// TestRecoveryYieldsToPressure: the rate halves, at most every adjustEvery,
// while the pressure is over the bound, down to a twentieth of the
// configured rate, and rises by a tenth of it per quiet period; the due
// times follow the rate.
func TestRecoveryYieldsToPressure(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e := newEnvAt(t, clk.Now)
	e.failed(e.sub, 1000)
	var mu sync.Mutex
	pressure, samples := time.Duration(0), 0
	setPressure := func(p time.Duration) { mu.Lock(); pressure = p; mu.Unlock() }
	sampled := func() int { mu.Lock(); defer mu.Unlock(); return samples }
	st := newStepper()
	r := e.runner(Options{Batch: 10, Backlog: 1000, Wait: st.wait, Rate: 100, Now: clk.Now,
		PressureBound: time.Millisecond,
		Pressure:      func() time.Duration { mu.Lock(); defer mu.Unlock(); samples++; return pressure }})
	if _, err := r.Begin(e.cid, e.sub.ID, store.FailedQuery{}); err != nil {
		t.Fatal(err)
	}
	<-st.ready
	look := func() { st.ticks <- struct{}{}; <-st.ready }
	look() // the first sample only starts the measurement
	if n := sampled(); n != 1 || r.Rate() != 100 {
		t.Fatalf("%d samples, rate %g after the first look; want 1 and 100", n, r.Rate())
	}
	setPressure(2 * time.Millisecond)
	clk.Add(100 * time.Millisecond)
	look()
	if n := sampled(); n != 1 || r.Rate() != 100 {
		t.Fatalf("%d samples, rate %g within adjustEvery; want 1 and 100", n, r.Rate())
	}
	for i, want := range []float64{50, 25, 12.5, 6.25, 5, 5} {
		clk.Add(adjustEvery)
		look()
		if got := r.Rate(); got != want {
			t.Fatalf("under pressure, period %d: rate %g, want %g", i, got, want)
		}
	}
	// The limiter follows: at 5 a second, a batch of 10 every 2 s (and
	// the batch the bucket may hold already), due 200 ms apart.
	before := len(e.dueTimes(e.sub))
	for range 16 { // 4 s
		clk.Add(adjustEvery)
		look()
	}
	due := e.dueTimes(e.sub)
	if n := len(due) - before; n < 20 || n > 30 {
		t.Fatalf("%d events requeued in 4 s at 5 a second, want 20 to 30", n)
	}
	last := due[len(due)-10:]
	if !spaced(last, 0, last[0], 200*time.Millisecond) {
		t.Fatalf("the last batch is due at %v, want 200 ms apart", last)
	}
	// Quiet: a tenth of the rate back per period, up to the rate.
	setPressure(time.Millisecond) // at the bound is not over it
	for i, want := range []float64{15, 25, 35, 45, 55, 65, 75, 85, 95, 100, 100} {
		clk.Add(adjustEvery)
		look()
		if got := r.Rate(); math.Abs(got-want) > 1e-9 {
			t.Fatalf("quiet, period %d: rate %g, want %g", i, got, want)
		}
	}
}
