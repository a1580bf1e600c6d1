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
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store/pgtest"
	"hookd/wire"
)

// clusterOnly skips a test of several hookd nodes unless the end-to-end
// tests run on PostgreSQL: only a shared store makes a cluster.
func clusterOnly(t *testing.T) {
	t.Helper()
	if !onPostgres() {
		t.Skipf("several nodes share a PostgreSQL store only (%s=postgres)", storeEnv)
	}
	if testing.Short() {
		t.Skip("runs three hookd processes")
	}
}

// arrival is what a burstListener saw of one event.
type arrival struct {
	first   time.Time   // when its first token came
	issuers []string    // the iss of each token, in arrival order
	algs    []string    // the alg of each token
	at      []time.Time // when each token came
}

// burstListener counts the tokens of a cluster under load: for each event
// (jti) when it first came, and the issuer (each node's own --public-url
// here, so: the node that sent it) and algorithm of every token; and the
// most requests it had at once. Every tenth request takes slow, so that
// attempts are in flight on every node at any moment.
type burstListener struct {
	slow      time.Duration
	mu        sync.Mutex
	got       map[string]*arrival
	byIssuer  map[string]int
	n         atomic.Int64
	now, most atomic.Int64
}

func newBurstListener(t *testing.T, slow time.Duration) (*burstListener, string) {
	l := &burstListener{slow: slow, got: map[string]*arrival{}, byIssuer: map[string]int{}}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	return l, srv.URL + "/hook"
}

func (l *burstListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := l.now.Add(1)
	defer l.now.Add(-1)
	for {
		m := l.most.Load()
		if n <= m || l.most.CompareAndSwap(m, n) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	at := time.Now()
	if parts := strings.Split(string(body), "."); len(parts) == 3 {
		var h struct{ Alg string }
		var c struct{ Jti, Iss string }
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if json.Unmarshal(hb, &h) == nil && json.Unmarshal(pb, &c) == nil && c.Jti != "" {
			l.mu.Lock()
			a := l.got[c.Jti]
			if a == nil {
				a = &arrival{first: at}
				l.got[c.Jti] = a
			}
			a.issuers = append(a.issuers, c.Iss)
			a.algs = append(a.algs, h.Alg)
			a.at = append(a.at, at)
			l.byIssuer[c.Iss]++
			l.mu.Unlock()
		}
	}
	if l.n.Add(1)%10 == 0 {
		time.Sleep(l.slow)
	}
	w.WriteHeader(http.StatusNoContent)
}

// missing returns the ids that never came.
func (l *burstListener) missing(ids []uuid.UUID) []uuid.UUID {
	l.mu.Lock()
	defer l.mu.Unlock()
	var miss []uuid.UUID
	for _, id := range ids {
		if l.got[id.String()] == nil {
			miss = append(miss, id)
		}
	}
	return miss
}

// arrivalOf returns a copy of what came of event id; ok is false when
// nothing did.
func (l *burstListener) arrivalOf(id uuid.UUID) (arrival, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.got[id.String()]
	if a == nil {
		return arrival{}, false
	}
	return arrival{first: a.first, issuers: slices.Clone(a.issuers), algs: slices.Clone(a.algs), at: slices.Clone(a.at)}, true
}

func (l *burstListener) received() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

// waitAll waits up to d for every id to come, and fails the test naming
// how many did not.
func (l *burstListener) waitAll(t *testing.T, ids []uuid.UUID, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		miss := l.missing(ids)
		if len(miss) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events %s never reached the listener within %s (first %s)", len(miss), len(ids), what, d, miss[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// issuerOf is the iss of the tokens node h signs for tn: each node's
// --public-url is its own address in these tests.
func issuerOf(h *hookd, tn tenant) string { return h.URL + "/" + tn.Customer.String() + "/webhooks" }

// ackedEvent is an event the intake acknowledged, and when.
type ackedEvent struct {
	id uuid.UUID
	at time.Time
}

// intakeLoad posts NDJSON batches of events to each node's intake from a
// goroutine per node until stop is called, and keeps the ids of the events
// acknowledged (202) for one subscription. A request that fails (the node
// is gone, the database is away) acknowledges nothing and is not retried.
type intakeLoad struct {
	limit int // stop once this many are acknowledged; 0: no limit
	// ahead, when set, holds the next request back while it reports
	// that the intake is too far ahead of the deliveries.
	ahead func(acked int) bool
	mu    sync.Mutex
	acked []ackedEvent
	per   []atomic.Int64 // acknowledged, by node
	stopC chan struct{}
	wg    sync.WaitGroup
}

func startIntakeLoad(nodes []*hookd, tn tenant, sid uuid.UUID, batch, limit int, ahead func(int) bool, tag string) *intakeLoad {
	ld := &intakeLoad{limit: limit, ahead: ahead, per: make([]atomic.Int64, len(nodes)), stopC: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	for w, h := range nodes {
		ld.wg.Go(func() {
			for b := 0; ; b++ {
				select {
				case <-ld.stopC:
					return
				default:
				}
				if ld.limit > 0 && ld.count() >= ld.limit {
					return
				}
				if ld.ahead != nil && ld.ahead(ld.count()) {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				var body bytes.Buffer
				for i := range batch {
					body.WriteString(evLine("entityCreated", fmt.Sprintf("%s-n%d-b%d-%d", tag, w, b, i)))
					body.WriteByte('\n')
				}
				req, _ := http.NewRequest(http.MethodPost, h.URL+tn.path("/webhooks/events"), &body)
				req.Header.Set("Content-Type", "application/x-ndjson")
				req.Header.Set("Authorization", "Bearer "+h.AdminToken)
				resp, err := client.Do(req)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var a intakeAnswer
				if resp.StatusCode != http.StatusAccepted || json.Unmarshal(data, &a) != nil {
					time.Sleep(20 * time.Millisecond) // 503 while the store is away
					continue
				}
				at := time.Now()
				ids := a.ids(sid)
				ld.mu.Lock()
				for _, id := range ids {
					ld.acked = append(ld.acked, ackedEvent{id: id, at: at})
				}
				ld.mu.Unlock()
				ld.per[w].Add(int64(len(ids)))
			}
		})
	}
	return ld
}

func (ld *intakeLoad) count() int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return len(ld.acked)
}

// stop ends the load, waits for its requests and returns every event
// acknowledged.
func (ld *intakeLoad) stop() []ackedEvent {
	close(ld.stopC)
	ld.wg.Wait()
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return slices.Clone(ld.acked)
}

func idsOf(evs []ackedEvent) []uuid.UUID {
	ids := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		ids[i] = e.id
	}
	return ids
}

// nodeID is the id the cluster view gives the node named name.
func nodeID(t *testing.T, h *hookd, name string) uuid.UUID {
	t.Helper()
	var cluster wire.Cluster
	h.mustCall(http.StatusOK, http.MethodGet, "/admin/cluster", h.AdminToken, nil, &cluster)
	for _, n := range cluster.Nodes {
		if n.Name == name {
			return n.ID
		}
	}
	t.Fatalf("GET /admin/cluster has no node %s: %+v", name, cluster.Nodes)
	return uuid.Nil
}

// claimedBy returns the events of subscription sid that node holds a
// claim on for their current due time: attempts it started and whose
// outcome it has not recorded.
func claimedBy(t *testing.T, dsn string, sid, node uuid.UUID) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT coalesce(jti, id) FROM events
WHERE subscription_id = $1 AND claimed_by = $2 AND due_at IS NOT NULL AND claimed_due = due_at`, sid, node)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// killHoldingClaims kills node h (named name, with that application_name)
// at a moment it holds claims on events of sid, and returns the events it
// held claims on when it died. It stops the process (SIGSTOP) until the
// database shows it holding claims, then kills it and waits until its
// connections are gone, so that no write of it is pending any more.
func killHoldingClaims(t *testing.T, h *hookd, dsn string, sid, node uuid.UUID, name string) []uuid.UUID {
	t.Helper()
	pid := h.proc.Process.Pid
	for try := 0; ; try++ {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if len(claimedBy(t, dsn, sid, node)) > 0 {
			break
		}
		if try == 100 {
			t.Fatalf("%s held no claim in 100 tries", name)
		}
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.Kill()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	waitUntil(t, 10*time.Second, name+"'s connections to end", func() bool {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	return claimedBy(t, dsn, sid, node)
}

// waitAllSucceeded waits up to d for the subscription's summary to count
// at least n events, every one of them succeeded.
func waitAllSucceeded(t *testing.T, h *hookd, tn tenant, sid uuid.UUID, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		sum := getSummary(h, tn, sid)
		if sum.Total >= n && sum.Succeeded == sum.Total {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got summary %+v after %s, want every one of at least %d events succeeded", sum, d, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterNodeKilled: a burst of more than 20,000 events sent to the
// intakes of three nodes is delivered, each event at least once, by every
// node; kill -9 of one node in the middle of it loses nothing
// acknowledged: the attempts it had claimed and not recorded are made by
// the others once it is no longer live, with no restart; and the listener
// never has more than --max-per-endpoint attempts at once from the
// cluster, the dead node's lapsed claims included.
func TestClusterNodeKilled(t *testing.T) {
	clusterOnly(t)
	const (
		burst          = 20_000
		maxPerEndpoint = 128
	)
	dsn := pgtest.Database(t)
	var nodes []*hookd
	for i := range 3 {
		// Each node's connections carry its name (application_name), so
		// that the test sees when the killed one's are gone.
		name := fmt.Sprintf("node-%d", i+1)
		nodes = append(nodes, startProcess(t, t.TempDir(), "--store", dsn+"&application_name="+name, "--node-name", name,
			"--client-rate", "0", "--retry-schedule", "0s,100ms,200ms,500ms,1s,2s", "--retry-jitter", "0", "--attempt-timeout", "2s",
			"--max-per-endpoint", strconv.Itoa(maxPerEndpoint)))
	}
	victim := nodes[1]
	victimID := nodeID(t, nodes[0], "node-2")
	tn := nodes[0].newTenant()
	l, url := newBurstListener(t, 50*time.Millisecond)
	// EdDSA: the signatures cost little, the cluster's coordination shows.
	sid := addSub(nodes[0], tn, map[string]any{"title": "cluster burst", "endpoint": url, "events": []string{"entityCreated"},
		"signing": map[string]any{"alg": "EdDSA"}})

	start := time.Now()
	// The intake is far faster than the deliveries: it is held to a few
	// thousand events ahead of them, so that the kill comes while both go
	// on.
	ld := startIntakeLoad(nodes, tn, sid, 250, burst, func(acked int) bool { return acked-l.received() > 3000 }, "burst")
	// The kill comes when a third of the burst has been delivered, node
	// 2's share included.
	waitUntil(t, 60*time.Second, "a third of the burst delivered, by node 2 too", func() bool {
		l.mu.Lock()
		byVictim := l.byIssuer[issuerOf(victim, tn)]
		l.mu.Unlock()
		return l.received() >= burst/3 && byVictim >= 100
	})
	orphans := killHoldingClaims(t, victim, dsn, sid, victimID, "node-2")
	killedAt, ackedAtKill := time.Now(), ld.count()
	waitUntil(t, 60*time.Second, "the whole burst acknowledged", func() bool { return ld.count() >= burst })
	acked := ld.stop()
	t.Logf("node 2 killed %s into the burst holding %d claims, with %d events acknowledged; %d acknowledged in all in %s (by node: %d, %d, %d)",
		killedAt.Sub(start).Round(time.Millisecond), len(orphans), ackedAtKill, len(acked), time.Since(start).Round(time.Millisecond),
		ld.per[0].Load(), ld.per[1].Load(), ld.per[2].Load())
	if len(orphans) == 0 {
		t.Fatal("node 2 held no claims when it was killed: the test shows nothing of their retry")
	}

	// Everything acknowledged comes; the dead node's claims lapse with its
	// heartbeat (NodeLease, 10s), then the others make its attempts.
	ids := idsOf(acked)
	l.waitAll(t, ids, 120*time.Second, "of the burst")
	for i, h := range nodes {
		if h != victim {
			t.Logf("node %d: %v lane rounds, %v outcome commits", i+1, metricValue(h, "hookd_delivery_lane_rounds_total"), metricValue(h, "hookd_delivery_outcomes_per_commit_count"))
		}
	}
	t.Logf("the listener had every acknowledged event %s after the start", time.Since(start).Round(time.Millisecond))
	// The killed node's claims lapse with its liveness, not with their
	// lease (a minute): the others take its events over within
	// orphanTakeover of the kill, ahead of the backlog (they are the
	// oldest due).
	const orphanTakeover = 30 * time.Second
	// The burst may all have come before the dead node's liveness ran out:
	// wait for the others' attempts of its claimed events.
	fromOthers := func(id uuid.UUID) bool {
		a, ok := l.arrivalOf(id)
		return ok && slices.ContainsFunc(a.issuers, func(iss string) bool { return iss != issuerOf(victim, tn) })
	}
	for time.Since(killedAt) < orphanTakeover && slices.ContainsFunc(orphans, func(id uuid.UUID) bool { return !fromOthers(id) }) {
		time.Sleep(50 * time.Millisecond)
	}
	var lastTakeover time.Duration
	for _, id := range orphans {
		a, ok := l.arrivalOf(id)
		if !ok {
			t.Errorf("event %s, claimed by the killed node, never came", id)
			continue
		}
		i := slices.IndexFunc(a.issuers, func(iss string) bool { return iss != issuerOf(victim, tn) })
		if i < 0 {
			t.Errorf("event %s, claimed by the killed node, came only from it (%d times): no other node attempted it", id, len(a.issuers))
			continue
		}
		took := a.at[i].Sub(killedAt)
		lastTakeover = max(lastTakeover, took)
		if took > orphanTakeover {
			t.Errorf("event %s, claimed by the killed node, came from another node %s after the kill, want within %s", id, took.Round(time.Millisecond), orphanTakeover)
		}
	}
	t.Logf("the others made the killed node's %d claimed attempts within %s of the kill", len(orphans), lastTakeover.Round(time.Millisecond))
	l.mu.Lock()
	by := maps.Clone(l.byIssuer)
	l.mu.Unlock()
	for i, h := range nodes {
		if by[issuerOf(h, tn)] == 0 {
			t.Errorf("node %d delivered none of the burst (deliveries by issuer: %v)", i+1, by)
		}
	}
	t.Logf("deliveries by node: %d, %d, %d; at most %d at once", by[issuerOf(nodes[0], tn)], by[issuerOf(nodes[1], tn)], by[issuerOf(nodes[2], tn)], l.most.Load())
	if got := l.most.Load(); got > maxPerEndpoint {
		t.Errorf("the listener had up to %d attempts at once, want at most %d (--max-per-endpoint over the cluster)", got, maxPerEndpoint)
	}

	// Every event ends as a success, those the killed node claimed and did
	// not record too, and the killed node holds no live claim.
	waitAllSucceeded(t, nodes[0], tn, sid, len(acked), 60*time.Second)
	var cluster wire.Cluster
	nodes[0].mustCall(http.StatusOK, http.MethodGet, "/admin/cluster", nodes[0].AdminToken, nil, &cluster)
	for _, n := range cluster.Nodes {
		if n.Name == "node-2" {
			t.Errorf("the killed node is still listed as live: %+v", n)
		}
	}
}

// TestClusterDatabaseRestart: three nodes lose their database under load
// and get it back. Each comes back by itself: /readyz answers 200 again,
// the heartbeat keeps the three live, and each listens for the others'
// notifications again (new due events and subscription changes reach
// every node through LISTEN, not only through polling: three
// subscriptions, one delivered by each node, change their algorithm
// through node 1). Nothing
// acknowledged before, during or after the outage is lost, and events
// accepted after it are delivered promptly.
func TestClusterDatabaseRestart(t *testing.T) {
	clusterOnly(t)
	const maxPerEndpoint = 8
	ctx := context.Background()
	pg := pgtest.New(t) // a PostgreSQL of the test's own, to kill
	dsn, err := pg.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*hookd
	for i := range 3 {
		nodes = append(nodes, startProcess(t, t.TempDir(), "--store", dsn, "--node-name", fmt.Sprintf("node-%d", i+1),
			"--client-rate", "0", "--retry-schedule", "0s,100ms,200ms,500ms,1s", "--retry-jitter", "0", "--attempt-timeout", "5s",
			"--max-per-endpoint", strconv.Itoa(maxPerEndpoint)))
	}
	tn := nodes[0].newTenant()
	l, url := newBurstListener(t, 50*time.Millisecond)
	sid := addSub(nodes[0], tn, map[string]any{"title": "cluster restart", "endpoint": url, "events": []string{"entityCreated"},
		"signing": map[string]any{"alg": "EdDSA"}})
	// One subscription is delivered by one node at a time: two more, each
	// with its own listener, give every node a subscription to deliver.
	listeners, subs := []*burstListener{l}, []uuid.UUID{sid}
	for i := range 2 {
		li, urli := newBurstListener(t, 50*time.Millisecond)
		listeners = append(listeners, li)
		subs = append(subs, addSub(nodes[0], tn, map[string]any{"title": fmt.Sprintf("cluster restart %d", i+2), "endpoint": urli,
			"events": []string{"entityCreated"}, "signing": map[string]any{"alg": "EdDSA"}}))
	}

	// Under load, the database goes away and comes back.
	ld := startIntakeLoad(nodes, tn, sid, 50, 3000, nil, "before")
	waitUntil(t, 30*time.Second, "events acknowledged and delivered", func() bool { return ld.count() >= 1500 && l.received() >= 300 })
	pg.Kill()
	for i, h := range nodes {
		waitUntil(t, 15*time.Second, fmt.Sprintf("node %d's /readyz to answer 503", i+1), func() bool { return readyzStatus(h.URL) == http.StatusServiceUnavailable })
	}
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	for i, h := range nodes {
		waitUntil(t, 30*time.Second, fmt.Sprintf("node %d's /readyz to answer 200", i+1), func() bool { return readyzStatus(h.URL) == http.StatusOK })
	}
	t.Logf("the nodes were ready %s after the database", time.Since(restarted).Round(time.Millisecond))
	before := ld.stop()
	l.waitAll(t, idsOf(before), 60*time.Second, "before the restart")

	// The three are live to each other again: each has beaten since the
	// database came back.
	waitUntil(t, 30*time.Second, "three nodes seen since the restart", func() bool {
		var cluster wire.Cluster
		nodes[2].mustCall(http.StatusOK, http.MethodGet, "/admin/cluster", nodes[2].AdminToken, nil, &cluster)
		beaten := 0
		for _, n := range cluster.Nodes {
			if seen, err := time.Parse(time.RFC3339Nano, n.LastSeen); err == nil && seen.After(restarted) {
				beaten++
			}
		}
		return beaten == len(nodes)
	})

	// Each node hears the notifications of new due events again: events
	// sent to node 1 alone reach the listeners of all three.
	heard := make([]float64, len(nodes))
	for i, h := range nodes {
		heard[i] = metricValue(h, "hookd_cluster_due_notifications_total")
	}
	after := startAndStopAfter(t, []*hookd{nodes[0]}, tn, sid, 200)
	for i, h := range nodes {
		waitUntil(t, 15*time.Second, fmt.Sprintf("node %d to hear of new due events", i+1), func() bool {
			return metricValue(h, "hookd_cluster_due_notifications_total") > heard[i]
		})
	}

	// A subscription change through node 1 reaches the others through
	// their notifications (a node that no longer listens would sign with
	// the old algorithm for ever), and events sent to every node after the
	// restart are delivered promptly.
	for _, s := range subs {
		nodes[0].mustCall(http.StatusOK, http.MethodPatch, subPath(tn, s, ""), tn.Token, map[string]any{"signing": map[string]any{"alg": "ES256"}}, nil)
	}
	patched := time.Now()
	var prompt []ackedEvent
	signed := map[string]bool{} // issuers that signed with ES256 since the change
	waitUntil(t, 30*time.Second, "every node to sign with the new algorithm", func() bool {
		round := startAndStopAfter(t, nodes, tn, sid, 300)
		prompt = append(prompt, round...)
		l.waitAll(t, idsOf(round), 30*time.Second, "after the restart")
		for _, li := range listeners {
			li.mu.Lock()
			for _, a := range li.got {
				for i, iss := range a.issuers {
					if a.algs[i] == "ES256" && a.at[i].After(patched) {
						signed[iss] = true
					}
				}
			}
			li.mu.Unlock()
		}
		return len(signed) == len(nodes)
	})
	var worst time.Duration
	for _, e := range prompt {
		a, _ := l.arrivalOf(e.id)
		worst = max(worst, a.first.Sub(e.at))
	}
	t.Logf("%d events after the restart, the slowest delivered %s after its acknowledgement", len(prompt), worst.Round(time.Millisecond))
	if worst > 10*time.Second {
		t.Errorf("an event accepted after the restart took %s to reach the listener, want at most 10s", worst)
	}

	// Nothing acknowledged is lost, and every event ends as a success.
	all := slices.Concat(before, after, prompt)
	l.waitAll(t, idsOf(all), 30*time.Second, "in all")
	waitAllSucceeded(t, nodes[0], tn, sid, len(all), 60*time.Second)
	for i, li := range listeners {
		if got := li.most.Load(); got > maxPerEndpoint {
			t.Errorf("listener %d had up to %d attempts at once, want at most %d (--max-per-endpoint over the cluster)", i+1, got, maxPerEndpoint)
		}
	}
}

// startAndStopAfter sends batches to nodes until at least n events are
// acknowledged and returns them.
func startAndStopAfter(t *testing.T, nodes []*hookd, tn tenant, sid uuid.UUID, n int) []ackedEvent {
	t.Helper()
	ld := startIntakeLoad(nodes, tn, sid, 50, n, nil, "after")
	deadline := time.Now().Add(30 * time.Second)
	for ld.count() < n {
		if time.Now().After(deadline) {
			ld.stop()
			t.Fatalf("%d of %d events acknowledged within 30s", ld.count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ld.stop()
}
