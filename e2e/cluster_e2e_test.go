package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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

// clusterLanes is how many subscriptions the cluster tests spread their
// events over: each subscription is delivered by one node at a time (the
// node holding its lane), so with twice as many subscriptions as nodes
// every node holds lanes.
const clusterLanes = 6

// laneClient is the captureClientId of the events of lane k.
func laneClient(k int) string { return fmt.Sprintf("lane-%d", k) }

// laneLine is an entityCreated event of lane k: only subscription k of
// addLanes takes it.
func laneLine(k int, sub string) string {
	return fmt.Sprintf(`{"type":"entityCreated","event":{"captureApplicationId":"app1","captureClientId":%q,"entityType":"user","globalSub":"capture-v1://x/%s","sub":%q}}`, laneClient(k), sub, sub)
}

// laneBody is an NDJSON body of n events spread round the lanes: event i
// goes to lane i % lanes.
func laneBody(lanes, n int, tag string) []byte {
	var body bytes.Buffer
	for i := range n {
		body.WriteString(laneLine(i%lanes, fmt.Sprintf("%s-%d", tag, i)))
		body.WriteByte('\n')
	}
	return body.Bytes()
}

// addLanes adds n subscriptions to entityCreated through h, subscription
// k with endpoint(k) and a filter that takes the events of lane k only;
// extra members go into every body.
func addLanes(h *hookd, tn tenant, n int, title string, endpoint func(k int) string, extra map[string]any) []uuid.UUID {
	h.t.Helper()
	sids := make([]uuid.UUID, n)
	for k := range n {
		body := map[string]any{"title": fmt.Sprintf("%s %d", title, k), "endpoint": endpoint(k), "events": []string{"entityCreated"},
			"filter": map[string]any{"properties": map[string]any{"entityCreated": map[string]any{
				"properties": map[string]any{"captureClientId": map[string]any{"const": laneClient(k)}},
				"required":   []string{"captureClientId"}}}, "required": []string{"entityCreated"}}}
		maps.Copy(body, extra)
		sids[k] = addSub(h, tn, body)
	}
	return sids
}

// laneIDs returns the event ids the intake recorded for the subscriptions
// sids, by subscription; it fails the test unless each event went to one
// subscription of sids and each subscription got its share.
func laneIDs(t *testing.T, a intakeAnswer, sids []uuid.UUID, n int) map[uuid.UUID][]uuid.UUID {
	t.Helper()
	by := map[uuid.UUID][]uuid.UUID{}
	total := 0
	for k, sid := range sids {
		ids := a.ids(sid)
		if want := n / len(sids); len(ids) < want {
			t.Errorf("intake: subscription %d got %d of %d events, want at least %d", k, len(ids), n, want)
		}
		by[sid] = ids
		total += len(ids)
	}
	if total != n {
		t.Errorf("intake: %d of %d events recorded for the lanes, want each once", total, n)
	}
	return by
}

// postLaneEvents sends n events spread round the lanes of sids to node
// h's intake for tn, in one NDJSON request, and returns their ids.
func postLaneEvents(h *hookd, tn tenant, sids []uuid.UUID, n int, tag string) []uuid.UUID {
	h.t.Helper()
	resp, data := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, laneBody(len(sids), n, tag), "Content-Type", "application/x-ndjson")
	if resp.StatusCode != http.StatusAccepted {
		h.t.Fatalf("intake: got %d, want 202: %s", resp.StatusCode, data)
	}
	var a intakeAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		h.t.Fatal(err)
	}
	by := laneIDs(h.t, a, sids, n)
	var ids []uuid.UUID
	for _, sid := range sids {
		ids = append(ids, by[sid]...)
	}
	return ids
}

// laneClaims reads which node holds the lane of each subscription that
// has a holder.
func laneClaims(t *testing.T, dsn string) map[uuid.UUID]uuid.UUID {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT subscription_id, node_id FROM lane_claims`)
	if err != nil {
		t.Fatal(err)
	}
	held := map[uuid.UUID]uuid.UUID{}
	var sid, node uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&sid, &node}, func() error {
		held[sid] = node
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return held
}

// lanesOf returns the subscriptions whose lane node holds.
func lanesOf(t *testing.T, dsn string, node uuid.UUID) []uuid.UUID {
	t.Helper()
	var subs []uuid.UUID
	for sub, holder := range laneClaims(t, dsn) {
		if holder == node {
			subs = append(subs, sub)
		}
	}
	return subs
}

// waitLanesSpread waits up to d until the live nodes share the lanes
// evenly: every lane of sids is held, only nodes hold lanes, each holds
// at least one of sids, and what each holds (all subscriptions counted)
// differs from what any other holds by one at most. It returns the
// holder of each lane of sids.
func waitLanesSpread(t *testing.T, dsn string, nodes []uuid.UUID, sids []uuid.UUID, d time.Duration) map[uuid.UUID]uuid.UUID {
	t.Helper()
	var held map[uuid.UUID]uuid.UUID
	spread := func() bool {
		held = laneClaims(t, dsn)
		all, ours := map[uuid.UUID]int{}, map[uuid.UUID]int{}
		for sid, node := range held {
			if !slices.Contains(nodes, node) {
				return false
			}
			all[node]++
			if slices.Contains(sids, sid) {
				ours[node]++
			}
		}
		for _, sid := range sids {
			if _, ok := held[sid]; !ok {
				return false
			}
		}
		least, most := len(held), 0
		for _, node := range nodes {
			if ours[node] == 0 {
				return false
			}
			least, most = min(least, all[node]), max(most, all[node])
		}
		return most-least <= 1
	}
	deadline := time.Now().Add(d)
	for !spread() {
		if time.Now().After(deadline) {
			t.Fatalf("the lanes were not spread evenly over the %d nodes within %s: holders %v", len(nodes), d, held)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := map[uuid.UUID]uuid.UUID{}
	for _, sid := range sids {
		out[sid] = held[sid]
	}
	return out
}

// TestClusterOfThreeNodes runs three hookd processes on one PostgreSQL
// database: they see each other; a token from one node works on another;
// a client's rate is divided between them; a key rotation through one
// node signs what another delivers next; the nodes share out the lanes of
// six subscriptions evenly, and events sent to every node's intake are each
// delivered once, by the node that holds their subscription's lane, so by
// every node; a slow listener
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

	// A customer and token made through node 1 work on node 2 and 3. The
	// customer's events are spread over clusterLanes subscriptions, each
	// with its own endpoint path.
	tn := n1.newTenant()
	l := newSETListener()
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	lanes := addLanes(n2, tn, clusterLanes, "cluster", func(k int) string { return fmt.Sprintf("%s/hook/%d", srv.URL, k) }, nil)
	n3.mustCall(http.StatusOK, http.MethodGet, subPath(tn, lanes[0], ""), tn.Token, nil, nil)

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
	ids := postLaneEvents(n2, tn, lanes, clusterLanes, "after-rotation")
	l.waitFor(t, ids)
	l.mu.Lock()
	for _, id := range ids {
		if kid := l.kid[id.String()]; kid != rot.Current {
			t.Errorf("event %s sent to node 2 after a rotation through node 1 was signed by %q, want the new current key %q", id, kid, rot.Current)
		}
	}
	l.mu.Unlock()

	// The nodes share out the lanes: with as many subscriptions as twice
	// the nodes (and no other subscription), each holds two.
	nodeIDs := make([]uuid.UUID, len(nodes))
	issuer := map[uuid.UUID]string{}
	for i, h := range nodes {
		nodeIDs[i] = nodeID(t, n1, fmt.Sprintf("node-%d", i+1))
		issuer[nodeIDs[i]] = issuerOf(h, tn)
	}
	holders := waitLanesSpread(t, dsn, nodeIDs, lanes, 30*time.Second)

	// Events sent to every node's intake are delivered, each once, every
	// node delivers some, and each subscription's events come from the
	// one node that holds its lane.
	laneOf := map[uuid.UUID]uuid.UUID{}
	var all []uuid.UUID
	for round := range 10 {
		for i, h := range nodes {
			resp, data := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, laneBody(len(lanes), 4*len(lanes), fmt.Sprintf("r%d-n%d", round, i)), "Content-Type", "application/x-ndjson")
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("intake on node %d: got %d, want 202: %s", i+1, resp.StatusCode, data)
			}
			var a intakeAnswer
			if err := json.Unmarshal(data, &a); err != nil {
				t.Fatal(err)
			}
			for sid, ids := range laneIDs(t, a, lanes, 4*len(lanes)) {
				for _, id := range ids {
					laneOf[id] = sid
				}
				all = append(all, ids...)
			}
		}
	}
	l.waitFor(t, all)
	l.mu.Lock()
	by := map[string]int{}
	for _, id := range all {
		if c := l.count[id.String()]; c != 1 {
			t.Errorf("event %s delivered %d times, want once", id, c)
		}
		iss := l.issuer[id.String()]
		by[iss]++
		if want := issuer[holders[laneOf[id]]]; iss != want {
			t.Errorf("event %s of subscription %s came from %s, want from the holder of its lane, %s", id, laneOf[id], iss, want)
		}
	}
	l.mu.Unlock()
	for i, h := range nodes {
		if by[issuerOf(h, tn)] == 0 {
			t.Errorf("node %d delivered none of %d events (deliveries by issuer: %v), want every node to deliver", i+1, len(all), by)
		}
	}
	t.Logf("%d events over %d subscriptions, deliveries by issuer: %v", len(all), len(lanes), by)

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
