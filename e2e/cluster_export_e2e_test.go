package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store/pgtest"
)

// TestClusterExportNodesKilled runs three hookd processes on one
// PostgreSQL database and one directory of export files, and kills with
// SIGKILL the node writing an export, in a first round once while it
// writes, in a second round twice: the node writing first and then the
// node that took the job over. Each killed node is replaced by a new one.
// After each kill the job has either completed with a file holding
// exactly its events or changed nothing (all its events still
// exportable); in the end it completes, through the nodes left, with all
// its events, and no event is in two completed exports.
func TestClusterExportNodesKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills hookd processes while they write 30,000-event exports")
	}
	if !onPostgres() {
		t.Skip("a cluster needs the PostgreSQL store: run with " + storeEnv + "=postgres")
	}
	const publicURL = "http://hookd.test"
	dsn := pgtest.Database(t)
	root := t.TempDir()
	blobDir := filepath.Join(root, "exports")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		t.Fatal(err)
	}
	live := map[string]*hookd{}
	var order []string // the live nodes' names, oldest first
	started := 0
	start := func() {
		started++
		name := fmt.Sprintf("node-%d", started)
		live[name] = startProcess(t, t.TempDir(), "--store", dsn, "--blob-url", "file://"+blobDir, "--node-name", name,
			"--export-cooldown", "0", "--client-rate", "0", "--public-url", publicURL, "--export-lease", clusterExportLease.String())
		order = append(order, name)
	}
	kill := func(name string) {
		live[name].Kill()
		delete(live, name)
		for i, n := range order {
			if n == name {
				order = append(order[:i], order[i+1:]...)
				break
			}
		}
		start()
	}
	for range 3 {
		start()
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// writer names the node holding job's claim while it writes; "" when
	// the job is not writing.
	writer := func(job uuid.UUID) string {
		var name string
		err := conn.QueryRow(context.Background(), `SELECT coalesce(n.name, '') FROM exports e
LEFT JOIN nodes n ON n.id = e.claimed_by WHERE e.id = $1 AND e.state = 'writing' AND e.claimed_until > now()`, job).Scan(&name)
		if errors.Is(err, pgx.ErrNoRows) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return name
	}

	first := live[order[0]]
	tn := first.newTenant()
	sid := disabledSub(first, tn, "failing")
	iss := publicURL + "/" + tn.Customer.String() + "/webhooks"
	var all failedEvents
	fileOf := map[uuid.UUID]uuid.UUID{} // event -> the completed export holding it

	// The kills of each round, each that long after its node was seen
	// writing.
	for round, delays := range [][]time.Duration{{200 * time.Millisecond}, {0, 100 * time.Millisecond}} {
		before := len(all.ids)
		addFailedEvents(live[order[0]], tn, sid, 30000, 1000, &all)
		want := all.ids[before:]
		job := startExport(live[order[1]], tn, subPath(tn, sid, "/exports"), nil)
		var killed []string
		for k, delay := range delays {
			// The node writing the job, once one does (after a kill, the
			// one that took it over when the dead node's claim ran out).
			// A node takes the job over once the dead writer's claim
			// ran out: within the lease and a poll, far below the
			// default lease (30s).
			var name string
			wait := 2 * time.Minute
			if k > 0 {
				wait = clusterExportTakeover
			}
			for deadline := time.Now().Add(wait); ; time.Sleep(5 * time.Millisecond) {
				name = writer(job.ID)
				if _, ok := live[name]; ok {
					break
				}
				var j exportView
				live[order[0]].mustCall(http.StatusOK, http.MethodGet, job.Links["self"].Href, tn.Token, nil, &j)
				if j.State != "processing" && j.State != "writing" {
					t.Logf("round %d: the job %s before kill %d", round, j.State, k+1)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("round %d: no live node writes job %s within %v of kill %d (--export-lease %v)", round, job.ID, wait, k, clusterExportLease)
				}
			}
			if name == "" || live[name] == nil {
				break
			}
			time.Sleep(delay)
			kill(name)
			killed = append(killed, name+" ("+checkAfterKill(t, live[order[0]], tn, sid, job, iss, want, all)+")")
		}
		t.Logf("round %d: killed %v (the job's state after each kill)", round, killed)

		h := live[order[len(order)-1]]
		done := waitClusterExport(t, h, tn, job.Links["self"].Href)
		if done.State != "completed" || count(done) != int64(len(want)) {
			t.Fatalf("round %d: got %s with %d events, want completed with %d", round, done.State, count(done), len(want))
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

	h := live[order[0]]
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
	// temporary files, which no download reaches.
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
	if len(completed) != 2 {
		t.Errorf("got %d completed exports, want 2", len(completed))
	}
	for _, f := range exportFiles(t, root) {
		if base := filepath.Base(f); !strings.HasSuffix(base, ".tmp") && !completed[base] {
			t.Errorf("file %s belongs to no completed export", f)
		}
	}
}

// checkAfterKill checks export job through the live node h right after a
// kill: completed with a file holding exactly want, or not completed with
// all of want still exportable. It returns the job's state.
func checkAfterKill(t *testing.T, h *hookd, tn tenant, sid uuid.UUID, job exportView, iss string, want []uuid.UUID, all failedEvents) string {
	t.Helper()
	var j exportView
	h.mustCall(http.StatusOK, http.MethodGet, job.Links["self"].Href, tn.Token, nil, &j)
	sum := getSummary(h, tn, sid)
	if j.State != "completed" {
		if sum.Exportable != len(want) {
			t.Fatalf("job %s after kill: got %d exportable, want all %d of its events", j.State, sum.Exportable, len(want))
		}
		return j.State
	}
	if sum.Exportable != 0 {
		t.Errorf("completed job after kill: got %d exportable, want 0", sum.Exportable)
	}
	resp, data := download(h, tn, j.Links["download"].Href)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != etagOf(data) {
		t.Fatalf("completed job after kill: download got %d", resp.StatusCode)
	}
	checkLines(t, iss, data, want, all)
	return j.State
}

// clusterExportLease is the nodes' --export-lease, and
// clusterExportTakeover how soon after a kill another node must write the
// dead writer's job: the lease, a poll and the load of a test run.
const (
	clusterExportLease    = 3 * time.Second
	clusterExportTakeover = 20 * time.Second
)

// waitClusterExport waits for the job at self to end, for up to three
// minutes: a job whose writer was killed waits for its claim's lease
// (clusterExportLease) before another node takes it over.
func waitClusterExport(t *testing.T, h *hookd, tn tenant, self string) exportView {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var j exportView
		h.mustCall(http.StatusOK, http.MethodGet, self, tn.Token, nil, &j)
		if j.State != "processing" && j.State != "writing" {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %s still %s after 3 minutes", j.ID, j.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
