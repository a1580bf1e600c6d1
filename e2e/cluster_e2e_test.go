package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store/pgtest"
	"hookd/wire"
)

// setListener records every token it receives: how often each event id
// (jti) came, the key id that signed it, and which node sent it (its
// issuer: each node's --public-url is its own address here).
type setListener struct {
	mu     sync.Mutex
	count  map[string]int
	kid    map[string]string
	issuer map[string]string
}

func newSETListener() *setListener {
	return &setListener{count: map[string]int{}, kid: map[string]string{}, issuer: map[string]string{}}
}

func (l *setListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	parts := strings.Split(string(body), ".")
	if len(parts) == 3 {
		var h struct{ Kid string }
		var c struct{ Jti, Iss string }
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if json.Unmarshal(hb, &h) == nil && json.Unmarshal(pb, &c) == nil && c.Jti != "" {
			l.mu.Lock()
			l.count[c.Jti]++
			l.kid[c.Jti] = h.Kid
			l.issuer[c.Jti] = c.Iss
			l.mu.Unlock()
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// slowListener takes 100ms per request and keeps the most requests it
// had at once.
type slowListener struct {
	now, most, done atomic.Int64
}

func (l *slowListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	n := l.now.Add(1)
	for {
		m := l.most.Load()
		if n <= m || l.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	l.now.Add(-1)
	l.done.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// waitFor waits until every id arrived, for up to 30 seconds.
func (l *setListener) waitFor(t *testing.T, ids []uuid.UUID) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l.mu.Lock()
		missing := 0
		for _, id := range ids {
			if l.count[id.String()] == 0 {
				missing++
			}
		}
		l.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events not delivered within 30s", missing, len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postEvents sends n events to node h's intake for tn, in one NDJSON
// request, and returns their ids for subscription sid.
func postEvents(h *hookd, tn tenant, sid uuid.UUID, n int, tag string) []uuid.UUID {
	h.t.Helper()
	var body bytes.Buffer
	for i := range n {
		body.WriteString(evLine("entityCreated", fmt.Sprintf("%s-%d", tag, i)))
		body.WriteByte('\n')
	}
	resp, data := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, body.Bytes(), "Content-Type", "application/x-ndjson")
	if resp.StatusCode != http.StatusAccepted {
		h.t.Fatalf("intake: got %d, want 202: %s", resp.StatusCode, data)
	}
	var a intakeAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		h.t.Fatal(err)
	}
	return a.ids(sid)
}

// TestClusterOfThreeNodes runs three hookd processes on one PostgreSQL
// database: they see each other; a token from one node works on another;
// a client's rate is divided between them; a key rotation through one
// node signs what another delivers next; events sent to every node's
// intake are each delivered once, by the nodes together; a slow listener
// gets at most --max-per-endpoint attempts at once from all of them; and
// an export started through one node is written once and read through the
// others.
func TestClusterOfThreeNodes(t *testing.T) {
	clusterOnly(t)
	const maxPerEndpoint = 4
	dsn := pgtest.Database(t)
	blobURL := "file://" + t.TempDir() // one bucket for the export files of all nodes
	var nodes []*hookd
	for i := range 3 {
		// A client's budget: bursts of 300 calls over the cluster, with
		// next to no refill, so that each node allows it 100.
		nodes = append(nodes, startProcess(t, t.TempDir(), "--store", dsn, "--blob-url", blobURL, "--node-name", fmt.Sprintf("node-%d", i+1),
			"--client-rate", "0.001", "--client-burst", "300", "--retry-schedule", "0s,200ms,500ms", "--retry-jitter", "0",
			"--max-per-endpoint", strconv.Itoa(maxPerEndpoint)))
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	// Every node lists the three (each was live before it answered ready).
	var cluster wire.Cluster
	n3.mustCall(http.StatusOK, http.MethodGet, "/admin/cluster", n3.AdminToken, nil, &cluster)
	var names []string
	for _, n := range cluster.Nodes {
		names = append(names, n.Name)
	}
	if got := strings.Join(names, ","); got != "node-1,node-2,node-3" {
		t.Fatalf("GET /admin/cluster on node 3: got nodes %s, want node-1,node-2,node-3", got)
	}

	// A customer and token made through node 1 work on node 2 and 3.
	tn := n1.newTenant()
	l := newSETListener()
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	sid := addSub(n2, tn, map[string]any{"title": "cluster", "endpoint": srv.URL + "/hook", "events": []string{"entityCreated"}})
	n3.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, ""), tn.Token, nil, nil)

	// Node 3 joined last and counted three live nodes: a new client's
	// burst there is a third of 300, its token request included.
	other := n3.newTenant()
	allowed := 1
	for ; allowed <= 300; allowed++ {
		if resp, _ := n3.call(http.MethodGet, other.path("/webhooks/subscriptions"), other.Token, nil); resp.StatusCode == http.StatusTooManyRequests {
			break
		} else if resp.StatusCode != http.StatusOK {
			t.Fatalf("list subscriptions: got %d, want 200 or 429", resp.StatusCode)
		}
	}
	if allowed != 100 {
		t.Errorf("node 3 allowed a client %d calls in a burst, want 100 (300 over 3 nodes)", allowed)
	}

	// A rotation through node 1 signs what node 2 delivers next.
	var rot struct{ Current string }
	n1.mustCall(http.StatusOK, http.MethodPost, "/admin/customers/"+tn.Customer.String()+"/keys/rotate", n1.AdminToken, nil, &rot)
	ids := postEvents(n2, tn, sid, 1, "after-rotation")
	if len(ids) != 1 {
		t.Fatalf("intake on node 2: got ids %v, want one", ids)
	}
	l.waitFor(t, ids)
	l.mu.Lock()
	kid := l.kid[ids[0].String()]
	l.mu.Unlock()
	if kid != rot.Current {
		t.Errorf("the event sent to node 2 after a rotation through node 1 was signed by %q, want the new current key %q", kid, rot.Current)
	}

	// Events sent to every node's intake are delivered, each once (the
	// claims), and every node delivers some.
	var all []uuid.UUID
	for round := range 10 {
		for i, h := range nodes {
			all = append(all, postEvents(h, tn, sid, 20, fmt.Sprintf("r%d-n%d", round, i))...)
		}
	}
	l.waitFor(t, all)
	l.mu.Lock()
	by := map[string]int{}
	for _, id := range all {
		if c := l.count[id.String()]; c != 1 {
			t.Errorf("event %s delivered %d times, want once", id, c)
		}
		by[l.issuer[id.String()]]++
	}
	l.mu.Unlock()
	for _, h := range nodes {
		if iss := h.URL + "/" + tn.Customer.String() + "/webhooks"; by[iss] == 0 {
			t.Errorf("node %s delivered none of %d events (deliveries by issuer: %v), want every node to deliver", h.URL, len(all), by)
		}
	}

	// A slow listener never has more than --max-per-endpoint attempts at
	// once from the three nodes together.
	slow := &slowListener{}
	slowSrv := httptest.NewServer(slow)
	t.Cleanup(slowSrv.Close)
	slowSub := addSub(n1, tn, map[string]any{"title": "cluster slow", "endpoint": slowSrv.URL + "/slow", "events": []string{"entityCreated"}})
	var slowIDs []uuid.UUID
	for i, h := range nodes {
		slowIDs = append(slowIDs, postEvents(h, tn, slowSub, 12, fmt.Sprintf("slow-%d", i))...)
	}
	deadline := time.Now().Add(30 * time.Second)
	for slow.done.Load() < int64(len(slowIDs)) {
		if time.Now().After(deadline) {
			t.Fatalf("the slow listener got %d of %d events within 30s", slow.done.Load(), len(slowIDs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := slow.most.Load(); got > maxPerEndpoint || got < 2 {
		t.Errorf("the slow listener had up to %d attempts at once, want 2 to %d (--max-per-endpoint over the cluster)", got, maxPerEndpoint)
	}

	// An export started through node 3 is written by one node and read
	// through the others.
	failing := addSub(n1, tn, map[string]any{"title": "cluster exports", "endpoint": srv.URL + "/x", "events": []string{"entityCreated"}})
	n2.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, failing, ""), tn.Token, map[string]any{"enabled": false}, nil)
	failed := postEvents(n2, tn, failing, 30, "exported")
	var job wire.ExportJob
	n3.mustCall(http.StatusAccepted, http.MethodPost, subPath(tn, failing, "/exports"), tn.Token, nil, &job)
	deadline = time.Now().Add(20 * time.Second)
	for job.State != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("export %s is %s after 20s, want completed", job.ID, job.State)
		}
		time.Sleep(200 * time.Millisecond)
		n1.mustCall(http.StatusOK, http.MethodGet, subPath(tn, failing, "/exports/"+job.ID.String()), tn.Token, nil, &job)
	}
	file := n2.mustCall(http.StatusOK, http.MethodGet, subPath(tn, failing, "/exports/"+job.ID.String()+"/download"), tn.Token, nil, nil)
	lines := strings.Split(strings.TrimSpace(string(file)), "\n")
	if len(lines) != len(failed) || job.EventCount == nil || *job.EventCount != int64(len(failed)) {
		t.Errorf("export through node 3: got %d lines (job says %v), want %d", len(lines), job.EventCount, len(failed))
	}
}
