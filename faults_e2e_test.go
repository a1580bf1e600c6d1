package main

// End-to-end tests of faults: a shutdown with attempts in flight, and a
// data directory whose file system fills up.

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hookd/store"
)

// gatedListener is a listener endpoint that counts the requests of every
// jti and holds each answer (204) until its gate opens.
type gatedListener struct {
	URL    string
	gate   chan struct{}
	closed sync.Once
	active atomic.Int32
	ended  atomic.Int32
	mu     sync.Mutex
	seen   map[string]int
}

func newGatedListener(t *testing.T) *gatedListener {
	t.Helper()
	l := &gatedListener{gate: make(chan struct{}), seen: map[string]int{}}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	t.Cleanup(l.open) // before srv.Close: no handler is left blocked
	l.URL = srv.URL + "/hook"
	return l
}

func (l *gatedListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if parts := strings.Split(string(body), "."); len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct{ Jti string }
			if json.Unmarshal(payload, &c) == nil {
				l.mu.Lock()
				l.seen[c.Jti]++
				l.mu.Unlock()
			}
		}
	}
	l.active.Add(1)
	defer l.active.Add(-1)
	<-l.gate
	w.WriteHeader(http.StatusNoContent)
	l.ended.Add(1)
}

func (l *gatedListener) open() { l.closed.Do(func() { close(l.gate) }) }

// requests returns the number of requests received in all and the most
// received for one jti.
func (l *gatedListener) requests() (total, most int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.seen {
		total += n
		most = max(most, n)
	}
	return total, most
}

// waitUntil polls cond every 20 ms for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readyzStatus is /readyz's status, 0 when the connection fails.
func readyzStatus(url string) int {
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// exited reports whether the process pid is gone (reaped by the harness).
func exited(pid int) bool { return syscall.Kill(pid, 0) != nil }

// TestShutdownDrainsWithReadyz503: after SIGTERM with a slow attempt in
// flight, the port stays open and /readyz answers 503 while the attempt
// runs; the stopped line comes only after it ended, and its outcome is
// stored.
func TestShutdownDrainsWithReadyz503(t *testing.T) {
	h := startProcess(t, t.TempDir(), "--log-level", "info", "--shutdown-grace", "30s", "--attempt-timeout", "30s")
	tn := h.newTenant()
	l := newGatedListener(t)
	sid := addSub(h, tn, map[string]any{"title": "slow", "endpoint": l.URL, "events": []string{"entityCreated"}})
	id := postNDJSON(h, tn, evLine("entityCreated", "u1")).ids(sid)[0]
	waitUntil(t, 10*time.Second, "the attempt", func() bool { return l.active.Load() == 1 })

	if err := h.proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "/readyz to answer 503", func() bool { return readyzStatus(h.URL) == http.StatusServiceUnavailable })
	time.Sleep(200 * time.Millisecond) // the drain goes on while the attempt runs
	if got := readyzStatus(h.URL); got != http.StatusServiceUnavailable {
		t.Errorf("got /readyz %d during the drain, want 503", got)
	}
	if strings.Contains(h.Stderr.String(), `"stopped"`) {
		t.Fatalf("got the stopped line while an attempt was in flight:\n%s", h.Stderr.String())
	}

	l.open()
	pid := h.proc.Process.Pid
	waitUntil(t, 20*time.Second, "hookd to exit", func() bool { return exited(pid) })
	h.Kill() // reaps
	if code := h.proc.ProcessState.ExitCode(); code != 0 {
		t.Errorf("got exit code %d, want 0; stderr %s", code, h.Stderr.String())
	}
	if l.ended.Load() != 1 || !strings.Contains(h.Stderr.String(), `"stopped"`) {
		t.Errorf("got %d attempts ended and log %s, want 1 and the stopped line", l.ended.Load(), h.Stderr.String())
	}
	db, err := store.Open(h.Data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, err := db.Event(tn.Customer, sid, id)
	if err != nil {
		t.Fatal(err)
	}
	if e.State != store.Success || e.Attempts != 1 {
		t.Errorf("got %s after %d attempts, want success after 1: the drain stores the outcome", e.State, e.Attempts)
	}
}

// TestSecondSignalExitsAtOnce: a second SIGTERM during the drain ends the
// process without waiting for the attempt in flight.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	h := startProcess(t, t.TempDir(), "--log-level", "info", "--shutdown-grace", "60s", "--attempt-timeout", "60s")
	tn := h.newTenant()
	l := newGatedListener(t)
	sid := addSub(h, tn, map[string]any{"title": "slow", "endpoint": l.URL, "events": []string{"entityCreated"}})
	postNDJSON(h, tn, evLine("entityCreated", "u1")).ids(sid)
	waitUntil(t, 10*time.Second, "the attempt", func() bool { return l.active.Load() == 1 })
	if err := h.proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "/readyz to answer 503", func() bool { return readyzStatus(h.URL) == http.StatusServiceUnavailable })
	if err := h.proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	pid := h.proc.Process.Pid
	waitUntil(t, 5*time.Second, "hookd to exit on the second signal", func() bool { return exited(pid) })
	h.Kill()
	if strings.Contains(h.Stderr.String(), `"stopped"`) {
		t.Errorf("got the stopped line after a second signal, want an exit at once:\n%s", h.Stderr.String())
	}
	if l.ended.Load() != 0 {
		t.Errorf("got %d attempts ended, want the process gone first", l.ended.Load())
	}
}
