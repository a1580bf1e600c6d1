package e2e

// End-to-end tests of faults: a shutdown with attempts in flight, and a
// data directory whose file system fills up.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	db := openStore(t, h.Data)
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

// mountTmpfs mounts a tmpfs of size on a fresh directory, unmounted at
// cleanup (after hookd stops: cleanups run last first); it skips the test
// where mounting is refused.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): this test needs a small file system to fill", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillUp writes path until the file system is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
}

// metricValue reads one unlabelled metric from /metrics, -1 when absent.
func metricValue(h *hookd, name string) float64 {
	h.t.Helper()
	_, body := h.call(http.MethodGet, "/metrics", "", nil)
	for _, line := range strings.Split(string(body), "\n") {
		// On PostgreSQL every metric carries the label node.
		if rest, ok := strings.CutPrefix(line, name+`{node="`); ok {
			if _, after, found := strings.Cut(rest, `"} `); found && !strings.Contains(rest[:len(rest)-len(after)], ",") {
				line = name + " " + after
			}
		}
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestFullDiskRefusesAndRecovers runs hookd with its data directory on an
// 80 MB tmpfs (a real file system, mounted for the test) and fills it while
// attempts are in flight: the intake answers 503 with Retry-After, /readyz
// is not ready, the attempts in flight are sent once and no other, and
// after the space is freed the intake resumes by itself and every
// acknowledged event is delivered.
func TestFullDiskRefusesAndRecovers(t *testing.T) {
	boltOnly(t, "a store on the data directory's disk")
	mnt := mountTmpfs(t, "80m")
	const perEndpoint = 8
	h := startHookd(t, filepath.Join(mnt, "data"), "--disk-reserve", "16MiB", "--max-per-endpoint", strconv.Itoa(perEndpoint),
		"--retry-schedule", "0s,100ms,200ms", "--retry-jitter", "0", "--attempt-timeout", "60s", "--shutdown-grace", "5s", "--client-rate", "0")
	tn := h.newTenant()
	l := newGatedListener(t)
	sid := addSub(h, tn, map[string]any{"title": "full", "endpoint": l.URL, "events": []string{"entityCreated"}})
	var lines []string
	for i := range 40 {
		lines = append(lines, evLine("entityCreated", "before-"+strconv.Itoa(i)))
	}
	acked := postNDJSON(h, tn, lines...).ids(sid)
	waitUntil(t, 10*time.Second, "the attempts in flight", func() bool { return l.active.Load() == perEndpoint })

	filler := filepath.Join(mnt, "filler")
	fillUp(t, filler)
	waitUntil(t, 10*time.Second, "/readyz to answer 503", func() bool { return readyzStatus(h.URL) == http.StatusServiceUnavailable })
	_, body := h.call(http.MethodGet, "/readyz", "", nil)
	if !strings.Contains(string(body), "below the reserve") {
		t.Errorf("got /readyz %s, want the reason", body)
	}
	resp, body := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, evLine("entityCreated", "refused")+"\n", "Content-Type", "application/x-ndjson")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"/insufficient-storage"`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("intake on a full disk: got %d %s (Retry-After %q), want 503 /insufficient-storage with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/summary"), tn.Token, nil, nil) // reads go on

	// The attempts in flight end; their outcomes cannot be stored.
	l.open()
	waitUntil(t, 20*time.Second, "five refused outcome writes", func() bool {
		return metricValue(h, "hookd_delivery_outcome_write_errors_total") >= 5
	})
	// The lanes may have started up to as many again while the first
	// outcomes gathered for their commit; none once it was refused.
	total, most := l.requests()
	if total < perEndpoint || total > 2*perEndpoint || most != 1 {
		t.Fatalf("while the disk is full: got %d requests, at most %d for one event; want the %d in flight and at most %d more, once each", total, most, perEndpoint, perEndpoint)
	}
	if got := metricValue(h, "hookd_delivery_outcomes_held"); got != float64(total) {
		t.Errorf("got hookd_delivery_outcomes_held %v, want %d: every outcome of the %d requests", got, total, total)
	}
	if got := metricValue(h, "hookd_disk_low"); got != 1 {
		t.Errorf("got hookd_disk_low %v, want 1", got)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the intake to accept events again", func() bool {
		resp, body := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, evLine("entityCreated", "after")+"\n", "Content-Type", "application/x-ndjson")
		if resp.StatusCode != http.StatusAccepted {
			return false
		}
		var a intakeAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, a.ids(sid)...)
		return true
	})
	if got := readyzStatus(h.URL); got != http.StatusOK {
		t.Errorf("got /readyz %d after the space was freed, want 200", got)
	}
	for _, id := range acked {
		waitEventState(h, tn, sid, id, "success")
	}
	total, most = l.requests()
	if dups := total - len(acked); dups > 2*perEndpoint || most > 2 {
		t.Errorf("got %d duplicate requests (at most %d for one event), want at most the %d attempts in flight when the disk filled", dups, most, 2*perEndpoint)
	}
	t.Logf("%d events acknowledged, %d requests received", len(acked), total)
	if n := strings.Count(h.Stderr.String(), "free disk space is below the reserve"); n != 1 {
		t.Errorf("got %d warnings of low disk space, want 1:\n%s", n, h.Stderr.String())
	}
}
