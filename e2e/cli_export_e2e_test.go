package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// requireExports skips while the exports API is not wired into the tree.
func requireExports(t *testing.T, h *hookd, tn tenant, sub uuid.UUID) {
	t.Helper()
	resp, body := h.call(http.MethodGet, tn.path("/webhooks/subscriptions/"+sub.String()+"/exports"), tn.Token, nil)
	if resp.StatusCode == http.StatusNotFound && strings.Contains(string(body), "no route") {
		t.Skip("the exports API is not wired yet")
	}
}

func TestExportDownloadFromRunningHookd(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testExportDownload(t, "none") })
	t.Run("gzip", func(t *testing.T) { testExportDownload(t, "gzip") })
}

// testExportDownload downloads an export file written with encoding enc:
// the file is saved as stored, compressed or not.
func testExportDownload(t *testing.T, enc string) {
	h := startHookd(t, "", "--export-encoding", enc)
	tn := h.newTenant()
	requireIntake(t, h, tn)
	var sub struct{ ID uuid.UUID }
	h.mustCall(http.StatusCreated, http.MethodPost, tn.path("/webhooks/subscriptions"), tn.Token,
		map[string]any{"title": "disabled", "endpoint": "http://127.0.0.1:1/hook", "events": []string{"entityCreated"}, "enabled": false}, &sub)
	requireExports(t, h, tn, sub.ID)

	// Events of a disabled subscription are stored as failures at once.
	var b bytes.Buffer
	for i := range 300 {
		b.WriteString(testEvent("entityCreated", i) + "\n")
	}
	events := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(events, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := cliRun(t, t.Context(), "publish", "--data", h.Data, "--customer", tn.Customer.String(), events); err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr)
	}

	exports := tn.path("/webhooks/subscriptions/" + sub.ID.String() + "/exports")
	var job struct {
		ID    uuid.UUID
		State string
	}
	h.mustCall(http.StatusAccepted, http.MethodPost, exports, tn.Token, nil, &job)
	for deadline := time.Now().Add(20 * time.Second); job.State != "completed"; {
		if time.Now().After(deadline) || job.State == "failed" || job.State == "canceled" {
			t.Fatalf("got job state %q, want completed", job.State)
		}
		time.Sleep(50 * time.Millisecond)
		h.mustCall(http.StatusOK, http.MethodGet, exports+"/"+job.ID.String(), tn.Token, nil, &job)
	}

	dir := t.TempDir()
	t.Chdir(dir)
	args := []string{"export", "download", "--data", h.Data, "--customer", tn.Customer.String(), "--subscription", sub.ID.String(),
		"--job", job.ID.String(), "--client-id", tn.ClientID, "--client-secret", tn.Secret}
	stdout, stderr, err := cliRun(t, t.Context(), args...)
	if err != nil {
		t.Fatalf("export download: %v\n%s", err, stderr)
	}
	name := job.ID.String() + ".ndjson"
	if enc == "gzip" {
		name += ".gz"
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("got no file named after Content-Disposition: %v", err)
	}
	sum := sha256.Sum256(data)
	if etag := `"` + hex.EncodeToString(sum[:]) + `"`; !strings.Contains(stdout, etag+" verified") {
		t.Errorf("got output %q, want the file's ETag %s verified", stdout, etag)
	}
	plain := data
	if enc == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("got a file that is not gzip: %v", err)
		}
		if plain, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	if n := bytes.Count(plain, []byte("\n")); n != 300 {
		t.Errorf("got %d lines in the export, want 300", n)
	}

	// --resume continues a partial file with a Range request.
	out2 := filepath.Join(dir, "again.ndjson")
	if err := os.WriteFile(out2+".part", data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := cliRun(t, t.Context(), append(args, "-o", out2, "--resume")...); err != nil {
		t.Fatalf("export download --resume: %v\n%s", err, stderr)
	}
	if again, _ := os.ReadFile(out2); !bytes.Equal(again, data) {
		t.Errorf("got %d bytes after resuming, want the %d bytes of the file", len(again), len(data))
	}
}
