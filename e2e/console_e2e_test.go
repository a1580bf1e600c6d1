//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// consoleScript drives the console in Chromium (see its header for the
// protocol it speaks on stdin and stdout).
var consoleScript = filepath.Join("testdata", "node", "console-e2e.mjs")

// consoleArtifacts is where the script saves its screenshots and the
// downloaded export (gitignored; make clean removes it).
var consoleArtifacts = filepath.Join("testdata", "artifacts")

// consoleScreens are the screens the script photographs, each at 1366×900
// (<name>-desktop.png) and 390×844 (<name>-phone.png).
var consoleScreens = []string{
	"console-signin-error", "console-event-search", "console-edit",
	"console-detail", "console-list", "console-validation", "console-redeliver",
	"console-attempts", "console-search-txn", "console-search-matches",
}

// consoleScreenshots are the file names of consoleScreens at both widths.
func consoleScreenshots() []string {
	var out []string
	for _, s := range consoleScreens {
		out = append(out, s+"-desktop.png", s+"-phone.png")
	}
	return out
}

// chromiumPath is Debian's Chromium, installed by .ci/chromium.sh.
const chromiumPath = "/usr/bin/chromium"

// requireBrowser skips when node, playwright-core or Chromium is missing,
// or fails under HOOKD_REQUIRE_EXTERNAL=1 (make test installs them with
// .ci/node-deps.sh and .ci/chromium.sh).
func requireBrowser(t *testing.T) {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join("testdata", "node", "node_modules", "playwright-core", "package.json")); err != nil {
		missing = "testdata/node/node_modules/playwright-core is missing (run bash .ci/node-deps.sh)"
	} else if _, err := os.Stat(chromiumPath); err != nil {
		missing = chromiumPath + " is missing (run bash .ci/chromium.sh)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("HOOKD_REQUIRE_EXTERNAL") == "1" {
		t.Fatalf("%s, and HOOKD_REQUIRE_EXTERNAL=1", missing)
	}
	t.Skipf("skipping: %s", missing)
}

// TestConsoleInChromium drives the embedded console in headless Chromium
// against a real hookd: / leads to it; a wrong secret shows the page's own
// error within 2 s; sign in, create a subscription, disable it after the
// warning, see the events posted meanwhile fail, list them newest and
// oldest first with their type, find one by its id, edit the subscription
// in place (an invalid filter is refused before sending), export the
// events and download the file (gzip on the wire, saved decoded as
// .ndjson), see Start export disabled with nothing left to export,
// enable the subscription and redeliver two selected events (one request
// each) and then a time window (its count shown first, then the
// recovery's progress), see a
// validation error next to its field, confirm a subscription without event
// types, delete a subscription after the confirmation, see the attempts of
// an event to a listener that answers 500 with a body (request headers,
// the decoded token, the response's headers and body), find an event by
// its txn, id and sub (one match opens it, several are listed), and take
// screenshots of each screen at 1366×900
// and 390×844.
func TestConsoleInChromium(t *testing.T) {
	requireBrowser(t)
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer listener.Close()
	// A listener that fails with a body, for the attempts' details.
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Listener", "failing")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":"database down","retry":true}`)
	}))
	defer failing.Close()
	// Its own data directory: the export queue holds only this test's
	// jobs. Two attempts a second apart: the failing listener's events
	// fail soon after their second attempt.
	h := startHookd(t, "", "--export-cooldown", "0", "--export-encoding", "gzip", "--retry-schedule", "0s,1s")
	tn := h.newTenant()

	artifacts, err := filepath.Abs(consoleArtifacts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range append(consoleScreenshots(), "failure.png") {
		_ = os.Remove(filepath.Join(artifacts, name)) // left by an earlier run
	}

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", consoleScript)
	cmd.Env = append(os.Environ(),
		"HOOKD_URL="+h.URL,
		"HOOKD_CUSTOMER="+tn.Customer.String(),
		"HOOKD_CLIENT_ID="+tn.ClientID,
		"HOOKD_CLIENT_SECRET="+tn.Secret,
		"HOOKD_ENDPOINT="+listener.URL+"/hook",
		"HOOKD_FAILING_ENDPOINT="+failing.URL+"/hook",
		"HOOKD_ARTIFACTS="+artifacts,
		"HOOKD_CHROMIUM="+chromiumPath,
	)
	// Node and the Chromium it starts form a process group of their own,
	// killed as a whole when the test gives up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", consoleScript, err)
	}

	var mu sync.Mutex
	var output []string
	passed := false
	logOutput := func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("console-e2e.mjs stdout:\n%s\nstderr:\n%s", strings.Join(output, "\n"), stderr.String())
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		mu.Lock()
		output = append(output, line)
		mu.Unlock()
		switch {
		case line == "PASS":
			passed = true
		case strings.HasPrefix(line, "READY_FOR_EVENTS "):
			sid, err := uuid.Parse(strings.TrimSpace(strings.TrimPrefix(line, "READY_FOR_EVENTS ")))
			if err != nil {
				t.Errorf("READY_FOR_EVENTS: %v", err)
				break
			}
			postConsoleEvents(t, h, tn, sid, 3)
			if _, err := io.WriteString(stdin, "EVENTS_DONE\n"); err != nil {
				t.Errorf("write EVENTS_DONE: %v", err)
			}
		case strings.HasPrefix(line, "READY_FOR_SAME_SUB "):
			f := strings.Fields(strings.TrimPrefix(line, "READY_FOR_SAME_SUB "))
			sid, err := uuid.Parse(f[0])
			if err != nil || len(f) != 2 {
				t.Errorf("READY_FOR_SAME_SUB: got %q, want a subscription id and a sub", line)
				break
			}
			for range 2 {
				body := fmt.Sprintf(`{"type":"entityCreated","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":%q}}`, f[1])
				var out intakeAnswer
				h.mustCall(http.StatusAccepted, http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, body, &out)
				if got := len(out.ids(sid)); got != 1 {
					t.Errorf("intake: got %d events recorded for subscription %s, want 1", got, sid)
				}
			}
			if _, err := io.WriteString(stdin, "EVENTS_DONE\n"); err != nil {
				t.Errorf("write EVENTS_DONE: %v", err)
			}
		}
	}
	_ = stdin.Close()
	err = cmd.Wait()
	if err != nil || !passed {
		logOutput()
		t.Fatalf("console-e2e.mjs: got exit %v and PASS printed %v, want exit 0 and PASS (screenshots in %s)", err, passed, artifacts)
	}
	if testing.Verbose() {
		logOutput()
	}
	for _, name := range consoleScreenshots() {
		data, err := os.ReadFile(filepath.Join(artifacts, name))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			continue
		}
		if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) || len(data) < 1000 {
			t.Errorf("screenshot %s: got %d bytes starting %q, want a PNG", name, len(data), data[:min(len(data), 8)])
		}
	}
}

// postConsoleEvents posts n entityCreated events to the tenant's intake and
// wants each recorded for subscription sid (a disabled one stores them as
// failures).
func postConsoleEvents(t *testing.T, h *hookd, tn tenant, sid uuid.UUID, n int) {
	t.Helper()
	for i := range n {
		body := fmt.Sprintf(`{"type":"entityCreated","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g-%d","sub":"s-%d"}}`, i, i)
		var out intakeAnswer
		h.mustCall(http.StatusAccepted, http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, body, &out)
		if got := len(out.ids(sid)); got != 1 {
			t.Errorf("intake: got %d events recorded for subscription %s, want 1", got, sid)
		}
	}
}
