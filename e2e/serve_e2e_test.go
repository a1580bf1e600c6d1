package e2e

// The process's life: start from the environment, a second process on the
// same data directory, refusal of a bad configuration, shutdown on a signal.

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"hookd/store"
)

// envOf returns a getenv func over m.
func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestServeRefusesBadConfigAsUsage: run refuses an invalid configuration
// as a usage error before touching the data directory.
func TestServeRefusesBadConfigAsUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "never")
	_, _, err := runCLI(t, nil, "serve", "--data", dir, "--log-format", "xml")
	if !errors.Is(err, errUsage) {
		t.Errorf("got %v, want a usage error", err)
	}
	if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
		t.Errorf("got the data directory created (%v), want nothing touched", statErr)
	}
}

// waitURL waits for a serving hookd to record its URL in dir.
func waitURL(t *testing.T, dir string, exited <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("hookd exited during start: %v", err)
		default:
		}
		if b, err := os.ReadFile(filepath.Join(dir, urlFile)); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("hookd did not record its URL within 15s")
	return ""
}

// TestServeFromEnvironment starts hookd configured only through HOOKD_*
// variables, starts a second one on the same data directory (refused
// within seconds), and stops the first by cancelling its context.
func TestServeFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"HOOKD_LISTEN": "127.0.0.1:0", "HOOKD_DATA": dir, "HOOKD_LOG_FORMAT": "json", "HOOKD_LOG_LEVEL": "info", "HOOKD_SUBSCRIPTION_LIMIT": "5"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exited := make(chan error, 1)
	go func() { exited <- run(ctx, []string{"serve"}, envOf(env), &stdout, &stderr) }()
	base := waitURL(t, dir, exited)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d, want 200", p, resp.StatusCode)
		}
	}
	if !strings.Contains(stderr.String(), `"subscriptionLimit":"5"`) || !strings.Contains(stderr.String(), `"data":"`+dir+`"`) {
		t.Errorf("got log %s, want the effective configuration from the environment", stderr.String())
	}
	if !regexp.MustCompile(`"level":"info","took":[0-9.]+,"file":"[^"]+","bytes":[0-9]+,[^\n]*"message":"opened the store"`).MatchString(stderr.String()) {
		t.Errorf("got log %s, want how long opening the store took, at info", stderr.String())
	}

	t.Run("second serve on the same data directory", func(t *testing.T) {
		start := time.Now()
		var errOut bytes.Buffer
		err := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--data", dir, "--log-format", "json"}, envOf(nil), &bytes.Buffer{}, &errOut)
		if took := time.Since(start); took > 6*time.Second {
			t.Errorf("got the refusal after %s, want it within seconds", took)
		}
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("got %v, want ErrLocked", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "another hookd") || !strings.Contains(msg, dir) {
			t.Errorf("got %q, want a message naming the data directory and another hookd", msg)
		}
		// The first one still serves.
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("first hookd after the refused second: %v", err)
		}
		resp.Body.Close()
	})

	cancel()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("shutdown: got %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("hookd did not stop within 15s of its context ending")
	}
	if !strings.Contains(stderr.String(), `"stopped"`) {
		t.Errorf("got log %s, want a stopped line", stderr.String())
	}
}

// TestSignalShutdown sends SIGTERM to a hookd process: it exits 0 after a
// clean shutdown.
func TestSignalShutdown(t *testing.T) {
	h := startProcess(t, t.TempDir(), "--log-level", "info")
	h.mustCall(http.StatusOK, http.MethodGet, "/healthz", "", nil, nil)
	if err := h.proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	pid := h.proc.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("hookd still runs 10s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.Kill() // reaps; the process is already gone
	if code := h.proc.ProcessState.ExitCode(); code != 0 {
		t.Errorf("got exit code %d, want 0; stderr %s", code, h.Stderr.String())
	}
	if logs := h.Stderr.String(); !strings.Contains(logs, `"shutting down"`) || !strings.Contains(logs, `"stopped"`) {
		t.Errorf("got log %s, want shutting down and stopped", logs)
	}
	if _, err := os.Stat(filepath.Join(h.Data, urlFile)); !os.IsNotExist(err) {
		t.Errorf("got %s left after shutdown (%v), want it removed", urlFile, err)
	}
}
