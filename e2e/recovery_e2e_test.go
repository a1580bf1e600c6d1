package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"hookd/recovery"
)

// heldListener answers 200 to each token once its gate is open and
// records the distinct jtis it answered.
type heldListener struct {
	URL  string
	gate chan struct{}
	once sync.Once
	mu   sync.Mutex
	jtis map[string]bool
}

func newHeldListener(t *testing.T) *heldListener {
	t.Helper()
	l := &heldListener{gate: make(chan struct{}), jtis: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case <-l.gate:
		case <-r.Context().Done():
			return
		}
		jti, _ := tokenClaims(t, string(body))["jti"].(string)
		l.mu.Lock()
		l.jtis[jti] = true
		l.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(l.open)
	l.URL = srv.URL + "/listener"
	return l
}

func (l *heldListener) open() { l.once.Do(func() { close(l.gate) }) }

func (l *heldListener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.jtis)
}

type recoveryView struct {
	ID                       string
	State                    string
	Count, Matched, Requeued int
	Selection                map[string]string
	FinishedAt               string
	Links                    map[string]struct{ Href string } `json:"_links"`
}

// waitRecovery polls a recovery for up to 20 s until it is completed.
func waitRecovery(h *hookd, tn tenant, href string) recoveryView {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var r recoveryView
		h.mustCall(http.StatusOK, http.MethodGet, href, tn.Token, nil, &r)
		if r.State != "running" {
			return r
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("recovery %s still running after 20s: %+v", href, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A recovery larger than one batch answers 202 at once with the job
// running, goes on after the answer, and ends completed. A restart ends it;
// posting again takes the events still failed.
func TestRecoveryJobPastTheRequestAndARestart(t *testing.T) {
	total := recovery.DefaultBatch*2 + 200
	dir := t.TempDir()
	args := []string{"--retry-schedule", "0s,100ms", "--retry-jitter", "0", "--attempt-timeout", "60s", "--shutdown-grace", "1s"}
	h := startHookd(t, dir, args...)
	tn := h.newTenant()
	l := newHeldListener(t)
	sid := addSub(h, tn, map[string]any{"title": "backlog", "endpoint": l.URL, "events": []string{"entityCreated"}})
	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"enabled": false}, nil)
	lines := make([]string, total)
	for i := range lines {
		lines[i] = evLine("entityCreated", fmt.Sprintf("u-%d", i))
	}
	postNDJSON(h, tn, lines...)
	if s := getSummary(h, tn, sid); s.Failed != total {
		t.Fatalf("summary %+v, want %d failed", s, total)
	}
	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"enabled": true}, nil)

	// The listener holds every request: the backlog stays at one batch.
	resp, body := h.call(http.MethodPost, subPath(tn, sid, "/events/redeliver"), tn.Token, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("redeliver: %d %s", resp.StatusCode, body)
	}
	var r recoveryView
	h.mustCall(http.StatusOK, http.MethodGet, resp.Header.Get("Location"), tn.Token, nil, &r)
	if r.State != "running" || r.Matched != total || r.Requeued != recovery.DefaultBatch || r.Count != r.Requeued {
		t.Fatalf("recovery %+v, want running with one batch of %d requeued", r, total)
	}
	if r.Links["self"].Href != resp.Header.Get("Location") {
		t.Errorf("self link %q, Location %q", r.Links["self"].Href, resp.Header.Get("Location"))
	}
	again, body := h.call(http.MethodPost, subPath(tn, sid, "/events/redeliver"), tn.Token, nil)
	if again.StatusCode != http.StatusConflict || again.Header.Get("Location") != r.Links["self"].Href {
		t.Fatalf("second recovery: %d %s (Location %q), want 409 naming the running one", again.StatusCode, body, again.Header.Get("Location"))
	}

	// A restart ends the recovery; the same request continues it.
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	h = startHookd(t, dir, args...)
	h.mustCall(http.StatusNotFound, http.MethodGet, r.Links["self"].Href, tn.Token, nil, nil)
	var r2 recoveryView
	h.mustCall(http.StatusAccepted, http.MethodPost, subPath(tn, sid, "/events/redeliver"), tn.Token, map[string]any{}, &r2)
	if r2.Matched != total-recovery.DefaultBatch || r2.State != "running" {
		t.Fatalf("recovery after the restart %+v, want the %d still failed", r2, total-recovery.DefaultBatch)
	}
	l.open()
	r2 = waitRecovery(h, tn, r2.Links["self"].Href)
	if r2.State != "completed" || r2.Requeued != total-recovery.DefaultBatch || r2.FinishedAt == "" {
		t.Fatalf("recovery %+v, want completed", r2)
	}
	deadline := time.Now().Add(20 * time.Second)
	for l.count() < total {
		if time.Now().After(deadline) {
			t.Fatalf("listener got %d distinct events, want %d", l.count(), total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := getSummary(h, tn, sid); s.Failed != 0 {
		t.Errorf("summary %+v, want none failed", s)
	}
	h.mustCall(http.StatusConflict, http.MethodDelete, r2.Links["self"].Href, tn.Token, nil, nil)
}
