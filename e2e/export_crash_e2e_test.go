package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// TestExportSurvivesKill9 kills a real hookd with SIGKILL while it writes
// a large export, at a different point in each round, and checks after
// each kill, on the store and the files the dead process left, that the
// job either completed with a file holding exactly its events or changed
// nothing; then that the restarted hookd finishes the job, and in the end
// that every failed event is in exactly one completed export.
func TestExportSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200,000 events")
	}
	dir := t.TempDir()
	const publicURL = "http://hookd.test"
	// No rate limit: the test polls each job's state as it changes. On
	// PostgreSQL the restarted hookd is a new node, which takes over the
	// job once the killed one's claim ran out: a short lease.
	args := []string{"--export-cooldown", "0", "--public-url", publicURL, "--client-rate", "0", "--export-lease", "3s"}
	h := startProcess(t, dir, args...)
	tn := h.newTenant()
	sid := disabledSub(h, tn, "failing")
	iss := publicURL + "/" + tn.Customer.String() + "/webhooks"
	var all failedEvents
	fileOf := map[uuid.UUID]uuid.UUID{} // event -> the completed export holding it

	// Kill at the start of the write, in its middle, near its end, and
	// after the job completed.
	for round, delay := range []time.Duration{0, 40 * time.Millisecond, 150 * time.Millisecond, 3 * time.Second} {
		before := len(all.ids)
		addFailedEvents(h, tn, sid, 50000, 1000, &all)
		want := all.ids[before:]
		job := startExport(h, tn, subPath(tn, sid, "/exports"), nil)
		state := ""
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			var j exportView
			h.mustCall(http.StatusOK, http.MethodGet, job.Links["self"].Href, tn.Token, nil, &j)
			if state = j.State; state != "" && state != "processing" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: job %s still %q after a minute", round, job.ID, state)
			}
		}
		time.Sleep(delay)
		h.Kill()
		after := inspectDeadExport(t, dir, tn.Customer, sid, job.ID, iss, want, all)
		t.Logf("round %d: seen %s, killed %s later, left %s", round, state, delay, after)

		h = startProcess(t, dir, args...)
		done := waitExport(h, tn, job.Links["self"].Href)
		if done.State != "completed" || count(done) != int64(len(want)) {
			t.Fatalf("round %d after restart: got %s with %d events, want completed with %d", round, done.State, count(done), len(want))
		}
		resp, data := download(h, tn, done.Links["download"].Href)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != etagOf(data) {
			t.Fatalf("round %d: download got %d", round, resp.StatusCode)
		}
		checkLines(t, iss, data, want, all)
		for _, id := range want {
			if other, dup := fileOf[id]; dup {
				t.Fatalf("event %s is in exports %s and %s", id, other, done.ID)
			}
			fileOf[id] = done.ID
		}
	}

	// Nothing is exported twice: nothing is left to export.
	if resp, data := h.call(http.MethodPost, subPath(tn, sid, "/exports"), tn.Token, nil); resp.StatusCode != http.StatusConflict || !strings.Contains(string(data), "Nothing to export") {
		t.Errorf("export after everything was exported: got %d %s, want 409 Nothing to export", resp.StatusCode, data)
	}
	if len(fileOf) != len(all.ids) {
		t.Errorf("got %d events in completed exports, want every one of the %d", len(fileOf), len(all.ids))
	}
	if s := getSummary(h, tn, sid); s.Exportable != 0 || s.Failed != len(all.ids) {
		t.Errorf("got summary %+v, want %d failed and none exportable", s, len(all.ids))
	}
	// Every export file is a completed job's: what the kills stranded are
	// temporary files, which no download reaches (the janitor removes them
	// after an hour).
	var list struct {
		Embedded struct{ Exports []exportView } `json:"_embedded"`
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/exports"), tn.Token, nil, &list)
	completed := map[string]bool{}
	for _, j := range list.Embedded.Exports {
		if j.State == "completed" {
			completed[j.ID.String()+".ndjson"] = true
		}
	}
	for _, f := range exportFiles(t, dir) {
		if base := filepath.Base(f); !strings.HasSuffix(base, ".tmp") && !completed[base] {
			t.Errorf("file %s belongs to no completed export", f)
		}
	}
}

// inspectDeadExport opens the store of a killed hookd and checks export
// job id: completed with a file holding exactly want, or not completed with
// want still exportable. It returns the job's state.
func inspectDeadExport(t *testing.T, dir string, cid, sid, id uuid.UUID, iss string, want []uuid.UUID, all failedEvents) store.ExportState {
	t.Helper()
	db := openStore(t, dir)
	defer db.Close() // before hookd starts again on dir
	// The embedded store's consistency check.
	if c, ok := db.(interface{ Check() error }); ok {
		if err := c.Check(); err != nil {
			t.Fatalf("store after kill: %v", err)
		}
	}
	job, err := db.Export(cid, sid, id)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := db.Summary(cid, sid)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "exports", cid.String(), sid.String(), id.String()+".ndjson")
	if job.State != store.ExportCompleted {
		if sum.Exportable != uint64(len(want)) {
			t.Fatalf("job %s after kill: got %d exportable, want all %d of its events", job.State, sum.Exportable, len(want))
		}
		return job.State
	}
	if sum.Exportable != 0 {
		t.Errorf("completed job after kill: got %d exportable, want 0", sum.Exportable)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("completed job after kill: %v", err)
	}
	sha := sha256.Sum256(data)
	if job.ETag != `"`+hex.EncodeToString(sha[:])+`"` || job.Size != int64(len(data)) {
		t.Fatalf("completed job after kill: the file does not match the job's ETag and size")
	}
	checkLines(t, iss, data, want, all)
	return job.State
}

// exportFiles lists the data files under <dir>/exports, without fileblob's
// attribute files.
func exportFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, "exports"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasSuffix(p, ".attrs") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
