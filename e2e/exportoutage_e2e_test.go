package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestExportFailureReason: an export whose blob store keeps failing (a
// file:// bucket whose customer directory is blocked by a regular file,
// so every write fails as an unreachable store's would) is retried for
// --export-retry-for, then ends failed with failureReason
// storage-unavailable and no internal text; the blob errors are counted
// in /metrics. Once the store works again the next export completes.
func TestExportFailureReason(t *testing.T) {
	dir := t.TempDir()
	h := startHookd(t, "", "--blob-url", "file://"+filepath.ToSlash(dir), "--export-retry-for", "1s", "--export-cooldown", "0")
	tn := h.newTenant()
	sid := disabledSub(h, tn, "failing")
	var evs failedEvents
	addFailedEvents(h, tn, sid, 20, 20, &evs)
	block := filepath.Join(dir, tn.Customer.String())
	if err := os.WriteFile(block, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}

	job := startExport(h, tn, subPath(tn, sid, "/exports"), nil)
	done := waitExport(h, tn, job.Links["self"].Href)
	_, raw := h.call(http.MethodGet, job.Links["self"].Href, tn.Token, nil)
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if done.State != "failed" || got["failureReason"] != "storage-unavailable" {
		t.Fatalf("got %s, want failed with failureReason storage-unavailable", raw)
	}
	for _, internal := range []string{"not a directory", "blobsink", dir, "error\""} {
		if strings.Contains(string(raw), internal) {
			t.Errorf("the job resource %s shows internal text %q", raw, internal)
		}
	}
	_, metrics := h.call(http.MethodGet, "/metrics", "", nil)
	m := regexp.MustCompile(`(?m)^hookd_export_blob_errors_total\{(?:node="[^"]*",)?operation="write"\} (\S+)$`).FindSubmatch(metrics)
	if len(m) < 2 {
		t.Errorf("no hookd_export_blob_errors_total{operation=\"write\"} in /metrics")
	} else if n, _ := strconv.ParseFloat(string(m[1]), 64); n < 2 {
		t.Errorf("hookd_export_blob_errors_total{operation=\"write\"}: got %s, want at least 2 (the first write and its retry)", m[1])
	}

	// The store works again: the events were not touched, and the next
	// export takes them all.
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	next := waitExport(h, tn, startExport(h, tn, subPath(tn, sid, "/exports"), nil).Links["self"].Href)
	if next.State != "completed" || count(next) != int64(len(evs.ids)) {
		t.Errorf("the next export: got %+v, want completed with %d events", next, len(evs.ids))
	}
}
