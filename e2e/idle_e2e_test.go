package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// cpuSeconds returns the user and system CPU time of process pid.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	// The command name is in parentheses and may hold spaces.
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parse /proc/%d/stat: %q", pid, b)
	}
	return float64(u+s) / 100 // USER_HZ
}

// TestIdleAfterBurstUsesNoCPU sends a 500-event burst to a healthy
// listener, with failing, disabled and deleted subscriptions beside it,
// waits until the healthy listener has every event and the failing one's
// schedule is spent, and then reads the real process's CPU time over 2
// seconds: an idle hookd uses well under 0.1 CPU-seconds there (its
// rescan reads the store once a second). A lane that loops without
// blocking used 1.4 cores here.
func TestIdleAfterBurstUsesNoCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("measures a real process")
	}
	h := startProcess(t, t.TempDir(), "--retry-schedule", "0s,50ms", "--retry-jitter", "0", "--client-rate", "0")
	tn := h.newTenant()
	ok := &jtiListener{seen: map[string]int{}}
	okSrv := httptest.NewServer(ok)
	t.Cleanup(okSrv.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	t.Cleanup(bad.Close)
	healthy := addSub(h, tn, map[string]any{"title": "ok", "endpoint": okSrv.URL + "/hook", "events": []string{"entityCreated"}})
	failing := addSub(h, tn, map[string]any{"title": "bad", "endpoint": bad.URL + "/hook", "events": []string{"entityCreated"}})
	disabled := addSub(h, tn, map[string]any{"title": "off", "endpoint": okSrv.URL + "/off", "events": []string{"entityCreated"}})
	deleted := addSub(h, tn, map[string]any{"title": "gone", "endpoint": okSrv.URL + "/gone", "events": []string{"entityCreated"}})

	var ids []uuid.UUID
	for b := range 5 {
		lines := make([]string, 100)
		for i := range lines {
			lines[i] = evLine("entityCreated", fmt.Sprintf("idle-%d-%d", b, i))
		}
		if b == 1 {
			h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, disabled, ""), tn.Token, map[string]any{"enabled": false}, nil)
		}
		if b == 2 {
			h.mustCall(http.StatusNoContent, http.MethodDelete, subPath(tn, deleted, ""), tn.Token, nil, nil)
		}
		ids = append(ids, postNDJSON(h, tn, lines...).ids(healthy)...)
	}
	if len(ids) != 500 {
		t.Fatalf("recorded %d events for the healthy subscription, want 500", len(ids))
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(ok.missing(ids)) > 0 || getSummary(h, tn, failing).Failed < 500 {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %d events not delivered, summary of the failing subscription %+v", len(ok.missing(ids)), getSummary(h, tn, failing))
		}
		time.Sleep(20 * time.Millisecond)
	}

	pid := h.proc.Process.Pid
	time.Sleep(500 * time.Millisecond) // the last outcomes' commits and the lanes' exit
	before := cpuSeconds(t, pid)
	time.Sleep(2 * time.Second)
	if used := cpuSeconds(t, pid) - before; used >= 0.1 {
		t.Errorf("idle hookd used %.2f CPU-seconds in 2 s after the burst, want under 0.1", used)
	}
}
