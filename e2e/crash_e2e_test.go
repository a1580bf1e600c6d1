package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// jtiListener is a listener that records the jti of every token it
// receives; every tenth request is slow, so that attempts are in flight.
type jtiListener struct {
	mu   sync.Mutex
	seen map[string]int
	n    atomic.Int64
}

func (l *jtiListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	parts := strings.Split(string(body), ".")
	if len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct{ Jti string }
			if json.Unmarshal(payload, &c) == nil && c.Jti != "" {
				l.mu.Lock()
				l.seen[c.Jti]++
				l.mu.Unlock()
			}
		}
	}
	if l.n.Add(1)%10 == 0 {
		time.Sleep(100 * time.Millisecond)
	}
	w.WriteHeader(http.StatusNoContent)
}

// missing returns the ids the listener has not seen.
func (l *jtiListener) missing(ids []uuid.UUID) []uuid.UUID {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []uuid.UUID
	for _, id := range ids {
		if l.seen[id.String()] == 0 {
			out = append(out, id)
		}
	}
	return out
}

func (l *jtiListener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// TestNothingLostAfterKill9 kills a real hookd process with SIGKILL while
// clients post events and deliveries are in flight, restarts it on the same
// data directory and checks that every event acknowledged with 202 reaches
// the listener at least once and is stored as success.
func TestNothingLostAfterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a real process")
	}
	dir := t.TempDir()
	// The check reads every acknowledged event back through one client:
	// no per-client rate limit.
	args := []string{"--retry-schedule", "0s,100ms,200ms,500ms,1s,2s", "--retry-jitter", "0", "--attempt-timeout", "2s", "--shutdown-grace", "2s", "--client-rate", "0"}
	h1 := startProcess(t, dir, args...)
	tn := h1.newTenant()
	l := &jtiListener{seen: map[string]int{}}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	sid := addSub(h1, tn, map[string]any{"title": "crash", "endpoint": srv.URL + "/hook", "events": []string{"entityCreated"}})

	var (
		mu    sync.Mutex
		acked []uuid.UUID
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	url := h1.URL + tn.path("/webhooks/events")
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 4 {
		wg.Go(func() {
			for batch := 0; ; batch++ {
				select {
				case <-stop:
					return
				default:
				}
				var body bytes.Buffer
				for i := range 25 {
					body.WriteString(evLine("entityCreated", fmt.Sprintf("w%d-b%d-%d", w, batch, i)))
					body.WriteByte('\n')
				}
				req, _ := http.NewRequest(http.MethodPost, url, &body)
				req.Header.Set("Content-Type", "application/x-ndjson")
				req.Header.Set("Authorization", "Bearer "+h1.AdminToken)
				resp, err := client.Do(req)
				if err != nil {
					continue // the process is gone: this batch was never acknowledged
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					continue
				}
				var a intakeAnswer
				if json.Unmarshal(data, &a) != nil {
					t.Errorf("a 202 with a body that is not an answer: %s", data)
					continue
				}
				mu.Lock()
				acked = append(acked, a.ids(sid)...)
				mu.Unlock()
			}
		})
	}
	ackedNow := func() []uuid.UUID {
		mu.Lock()
		defer mu.Unlock()
		return append([]uuid.UUID(nil), acked...)
	}

	// Kill mid-burst: intake requests are open and deliveries are in flight.
	deadline := time.Now().Add(30 * time.Second)
	for (len(ackedNow()) < 1500 || l.count() < 300) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h1.Kill()
	close(stop)
	wg.Wait()
	ids := ackedNow()
	undelivered := len(l.missing(ids))
	t.Logf("killed with %d events acknowledged, %d of them not yet delivered", len(ids), undelivered)
	if len(ids) < 1500 {
		t.Fatalf("got %d acknowledged events before the kill, want at least 1500", len(ids))
	}

	h2 := startProcess(t, dir, args...)
	deadline = time.Now().Add(60 * time.Second)
	var miss []uuid.UUID
	for {
		miss = l.missing(ids)
		if len(miss) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(miss) > 0 {
		t.Fatalf("%d of %d acknowledged events never reached the listener within 60s after the restart (first %s)", len(miss), len(ids), miss[0])
	}

	// The store has them all, as success once their outcomes are recorded.
	deadline = time.Now().Add(20 * time.Second)
	var s summaryView
	for {
		s = getSummary(h2, tn, sid)
		if (s.Retrying == 0 && s.Total >= len(ids)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.Total < len(ids) || s.Succeeded != s.Total {
		t.Fatalf("got summary %+v, want every one of at least %d events succeeded", s, len(ids))
	}
	for i, id := range ids {
		if i%7 != 0 { // a sample keeps the test short
			continue
		}
		if e := getEventView(h2, tn, sid, id); e.State != "success" {
			t.Errorf("event %s: got %s, want success", id, e.State)
		}
	}
}
