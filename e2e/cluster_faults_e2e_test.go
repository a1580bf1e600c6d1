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
// here, so: the node that sent it) and algorithm of every token; and for
// each endpoint path (one per subscription) the most requests it had at
// once. Every tenth request takes slow, so that attempts are in flight on
// every node at any moment. It keeps the requests in progress with their
// issuer, and holds the answers to the requests of an issuer while hold
// says so, so that a node can be killed with attempts in progress.
type burstListener struct {
	slow     time.Duration
	mu       sync.Mutex
	got      map[string]*arrival
	byIssuer map[string]int
	now      map[string]int              // requests in progress, by path
	most     map[string]int              // most requests at once, by path
	inFlight map[*http.Request]sentToken // requests in progress
	held     map[string]chan struct{}    // closed when the answers to an issuer may go
	n        atomic.Int64
}

// sentToken is what a request in progress carries.
type sentToken struct{ jti, iss string }

func newBurstListener(t *testing.T, slow time.Duration) (*burstListener, string) {
	l := &burstListener{slow: slow, got: map[string]*arrival{}, byIssuer: map[string]int{}, now: map[string]int{}, most: map[string]int{},
		inFlight: map[*http.Request]sentToken{}, held: map[string]chan struct{}{}}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	t.Cleanup(l.releaseAll) // before Close, which waits for the handlers
	return l, srv.URL + "/hook"
}

func (l *burstListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	at := time.Now()
	var h struct{ Alg string }
	var c struct{ Jti, Iss string }
	if parts := strings.Split(string(body), "."); len(parts) == 3 {
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if json.Unmarshal(hb, &h) != nil || json.Unmarshal(pb, &c) != nil {
			c.Jti = ""
		}
	}
	l.mu.Lock()
	l.now[r.URL.Path]++
	l.most[r.URL.Path] = max(l.most[r.URL.Path], l.now[r.URL.Path])
	if c.Jti != "" {
		a := l.got[c.Jti]
		if a == nil {
			a = &arrival{first: at}
			l.got[c.Jti] = a
		}
		a.issuers = append(a.issuers, c.Iss)
		a.algs = append(a.algs, h.Alg)
		a.at = append(a.at, at)
		l.byIssuer[c.Iss]++
	}
	l.inFlight[r] = sentToken{jti: c.Jti, iss: c.Iss}
	l.mu.Unlock()
	if l.n.Add(1)%10 == 0 {
		time.Sleep(l.slow)
	}
	// A request leaves the ones in progress in the same step that finds
	// its issuer not held: what inFlightFrom lists while an issuer is held
	// stays unanswered until release (or until its sender hangs up).
	l.mu.Lock()
	hold := l.held[c.Iss]
	if hold == nil {
		l.doneLocked(r)
	}
	l.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
		}
		l.mu.Lock()
		l.doneLocked(r)
		l.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (l *burstListener) doneLocked(r *http.Request) {
	delete(l.inFlight, r)
	l.now[r.URL.Path]--
}

// hold keeps the answers to the requests from issuer iss, those in
// progress and those to come, until release.
func (l *burstListener) hold(iss string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[iss] == nil {
		l.held[iss] = make(chan struct{})
	}
}

// release lets the held answers to issuer iss go.
func (l *burstListener) release(iss string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.held[iss]; c != nil {
		close(c)
		delete(l.held, iss)
	}
}

func (l *burstListener) releaseAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for iss, c := range l.held {
		close(c)
		delete(l.held, iss)
	}
}

// inFlightFrom returns the events of the requests from issuer iss that
// are in progress.
func (l *burstListener) inFlightFrom(iss string) []uuid.UUID {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []uuid.UUID
	for _, s := range l.inFlight {
		if id, err := uuid.Parse(s.jti); err == nil && s.iss == iss {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(ids)
}

// mostAtOnce returns the endpoint path that had the most requests at once,
// and how many.
func (l *burstListener) mostAtOnce() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	path, most := "", 0
	for p, n := range l.most {
		if n > most {
			path, most = p, n
		}
	}
	return path, most
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

// ackedEvent is an event the intake acknowledged for a subscription, and
// when.
type ackedEvent struct {
	id, sid uuid.UUID
	at      time.Time
}

// intakeLoad posts NDJSON batches of events spread round the lanes of
// subscriptions (laneBody) to each node's intake from a goroutine per node
// until stop is called, and keeps the ids of the events acknowledged (202)
// for them. A request that fails (the node is gone, the database is away)
// acknowledges nothing and is not retried.
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

func startIntakeLoad(nodes []*hookd, tn tenant, sids []uuid.UUID, batch, limit int, ahead func(int) bool, tag string) *intakeLoad {
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
				body := laneBody(len(sids), batch, fmt.Sprintf("%s-n%d-b%d", tag, w, b))
				req, _ := http.NewRequest(http.MethodPost, h.URL+tn.path("/webhooks/events"), bytes.NewReader(body))
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
				n := 0
				ld.mu.Lock()
				for _, sid := range sids {
					for _, id := range a.ids(sid) {
						ld.acked = append(ld.acked, ackedEvent{id: id, sid: sid, at: at})
						n++
					}
				}
				ld.mu.Unlock()
				ld.per[w].Add(int64(n))
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

// killInFlight kills node h (named name, with that application_name)
// while the listener l holds attempts of it in progress, and returns the
// events of those attempts. It holds the answers to the node's requests
// (issuer iss), waits until want are in progress (or, at most a second
// more, until one is), kills the node, and lets the answers go (to dead
// connections) only once the node's connections to the database are gone:
// the node never learns the outcome of those attempts, nor records it.
func killInFlight(t *testing.T, l *burstListener, h *hookd, iss, dsn, name string, want int) []uuid.UUID {
	t.Helper()
	l.hold(iss)
	defer l.release(iss)
	var inFlight []uuid.UUID
	waitUntil(t, 10*time.Second, name+"'s attempts in progress at the listener", func() bool {
		inFlight = l.inFlightFrom(iss)
		return len(inFlight) > 0
	})
	// Held, its lanes fill up to --max-per-endpoint (well within its
	// --attempt-timeout).
	for first := time.Now(); len(inFlight) < want && time.Since(first) < time.Second; inFlight = l.inFlightFrom(iss) {
		time.Sleep(5 * time.Millisecond)
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
	return inFlight
}

// bySubscription counts events by subscription.
func bySubscription(evs []ackedEvent) map[uuid.UUID]int {
	n := map[uuid.UUID]int{}
	for _, e := range evs {
		n[e.sid]++
	}
	return n
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

// TestClusterNodeKilled: a burst of more than 20,000 events spread over
// six subscriptions and sent to the intakes of three nodes is delivered,
// each event at least once, by every node (each delivers the
// subscriptions whose lanes it holds); kill -9 of one node in the middle
// of it loses nothing acknowledged: the attempts it had in progress at the
// listener when it died are made by the others once it is no longer live,
// with no restart, and they take its lanes; and no endpoint ever has more
// than --max-per-endpoint attempts at once from the cluster.
func TestClusterNodeKilled(t *testing.T) {
	clusterOnly(t)
	const (
		burst          = 20_000
		maxPerEndpoint = 16
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
	nodeIDs := make([]uuid.UUID, len(nodes))
	for i := range nodes {
		nodeIDs[i] = nodeID(t, nodes[0], fmt.Sprintf("node-%d", i+1))
	}
	victim, victimID := nodes[1], nodeIDs[1]
	tn := nodes[0].newTenant()
	l, url := newBurstListener(t, 50*time.Millisecond)
	// Each subscription has its own endpoint path, so that the listener
	// counts the attempts in progress per subscription. EdDSA: the
	// signatures cost little, the cluster's coordination shows.
	sids := addLanes(nodes[0], tn, clusterLanes, "cluster burst", func(k int) string { return fmt.Sprintf("%s/%d", url, k) },
		map[string]any{"signing": map[string]any{"alg": "EdDSA"}})
	victimIss := issuerOf(victim, tn)

	// The nodes share out the lanes before the burst: an event for each
	// subscription, then two lanes each.
	warm := postLaneEvents(nodes[0], tn, sids, len(sids), "warm-up")
	l.waitAll(t, warm, 30*time.Second, "of the warm-up")
	waitLanesSpread(t, dsn, nodeIDs, sids, 30*time.Second)

	start := time.Now()
	// The intake is far faster than the deliveries: it is held to a few
	// thousand events ahead of them, so that the kill comes while both go
	// on.
	ld := startIntakeLoad(nodes, tn, sids, 250, burst, func(acked int) bool { return acked-l.received() > 3000 }, "burst")
	// The kill comes when a third of the burst has been delivered, node
	// 2's share included, while node 2 holds lanes.
	waitUntil(t, 60*time.Second, "a third of the burst delivered, by node 2 too", func() bool {
		l.mu.Lock()
		byVictim := l.byIssuer[victimIss]
		l.mu.Unlock()
		return l.received() >= burst/3 && byVictim >= 100
	})
	victimLanes := lanesOf(t, dsn, victimID)
	if len(victimLanes) == 0 {
		t.Fatalf("node 2 holds no lane (holders: %v): killing it shows nothing of a takeover", laneClaims(t, dsn))
	}
	orphans := killInFlight(t, l, victim, victimIss, dsn, "node-2", maxPerEndpoint)
	killedAt, ackedAtKill := time.Now(), ld.count()
	waitUntil(t, 60*time.Second, "the whole burst acknowledged", func() bool { return ld.count() >= burst })
	acked := ld.stop()
	t.Logf("node 2 killed %s into the burst holding %d lanes, with %d attempts in progress at the listener and %d events acknowledged; %d acknowledged in all in %s (by node: %d, %d, %d)",
		killedAt.Sub(start).Round(time.Millisecond), len(victimLanes), len(orphans), ackedAtKill, len(acked), time.Since(start).Round(time.Millisecond),
		ld.per[0].Load(), ld.per[1].Load(), ld.per[2].Load())

	// Everything acknowledged comes; the dead node's lanes lapse with its
	// heartbeat (NodeLease, 10s), then the others take them and make its
	// attempts.
	ids := idsOf(acked)
	l.waitAll(t, ids, 120*time.Second, "of the burst")
	t.Logf("the listener had every acknowledged event %s after the start", time.Since(start).Round(time.Millisecond))
	// The others take the killed node's lanes within NodeLease and a
	// heartbeat of the kill, and make first what it had in progress (the
	// oldest due of those lanes): within orphanTakeover of the kill.
	const orphanTakeover = 30 * time.Second
	// The burst may all have come before the dead node's liveness ran out:
	// wait for the others' attempts of what it had in progress.
	fromOthers := func(id uuid.UUID) bool {
		a, ok := l.arrivalOf(id)
		return ok && slices.ContainsFunc(a.issuers, func(iss string) bool { return iss != victimIss })
	}
	for time.Since(killedAt) < orphanTakeover && slices.ContainsFunc(orphans, func(id uuid.UUID) bool { return !fromOthers(id) }) {
		time.Sleep(50 * time.Millisecond)
	}
	var lastTakeover time.Duration
	for _, id := range orphans {
		a, ok := l.arrivalOf(id)
		if !ok {
			t.Errorf("event %s, in progress from the killed node, never came", id)
			continue
		}
		i := slices.IndexFunc(a.issuers, func(iss string) bool { return iss != victimIss })
		if i < 0 {
			t.Errorf("event %s, in progress from the killed node, came only from it (%d times): no other node attempted it", id, len(a.issuers))
			continue
		}
		took := a.at[i].Sub(killedAt)
		lastTakeover = max(lastTakeover, took)
		if took > orphanTakeover {
			t.Errorf("event %s, in progress from the killed node, came from another node %s after the kill, want within %s", id, took.Round(time.Millisecond), orphanTakeover)
		}
	}
	t.Logf("the others made the %d attempts the killed node had in progress within %s of the kill", len(orphans), lastTakeover.Round(time.Millisecond))

	// The killed node's lanes are held by the live nodes now.
	for time.Since(killedAt) < orphanTakeover && len(lanesOf(t, dsn, victimID)) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	held := laneClaims(t, dsn)
	for _, sid := range victimLanes {
		if node, ok := held[sid]; !ok || node == victimID || !slices.Contains(nodeIDs, node) {
			t.Errorf("subscription %s, whose lane the killed node held, has holder %v (any: %t) %s after the kill, want a live node", sid, node, ok, time.Since(killedAt).Round(time.Millisecond))
		}
	}

	l.mu.Lock()
	by := maps.Clone(l.byIssuer)
	l.mu.Unlock()
	for i, h := range nodes {
		if by[issuerOf(h, tn)] == 0 {
			t.Errorf("node %d delivered none of the burst (deliveries by issuer: %v)", i+1, by)
		}
	}
	path, most := l.mostAtOnce()
	t.Logf("deliveries by node: %d, %d, %d; at most %d at once on %s", by[issuerOf(nodes[0], tn)], by[issuerOf(nodes[1], tn)], by[issuerOf(nodes[2], tn)], most, path)
	if most > maxPerEndpoint {
		t.Errorf("the listener had up to %d attempts at once on %s, want at most %d (--max-per-endpoint over the cluster)", most, path, maxPerEndpoint)
	}

	// Every event ends as a success, those the killed node had in progress
	// too.
	for sid, n := range bySubscription(acked) {
		waitAllSucceeded(t, nodes[0], tn, sid, n+1, 60*time.Second) // and its warm-up event
	}
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
// every node through LISTEN, not only through polling). Nothing
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
	// Events spread over six subscriptions, so that every node holds lanes
	// and delivers.
	sids := addLanes(nodes[0], tn, clusterLanes, "cluster restart", func(k int) string { return fmt.Sprintf("%s/%d", url, k) },
		map[string]any{"signing": map[string]any{"alg": "EdDSA"}})

	// Under load, the database goes away and comes back.
	ld := startIntakeLoad(nodes, tn, sids, 60, 3000, nil, "before")
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
	after := startAndStopAfter(t, []*hookd{nodes[0]}, tn, sids, 200)
	for i, h := range nodes {
		waitUntil(t, 15*time.Second, fmt.Sprintf("node %d to hear of new due events", i+1), func() bool {
			return metricValue(h, "hookd_cluster_due_notifications_total") > heard[i]
		})
	}

	// A subscription change through node 1 reaches the others through
	// their notifications (a node that no longer listens would sign with
	// the old algorithm for ever), and events sent to every node after the
	// restart are delivered promptly.
	for _, sid := range sids {
		nodes[0].mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"signing": map[string]any{"alg": "ES256"}}, nil)
	}
	var prompt []ackedEvent
	waitUntil(t, 30*time.Second, "every node to sign with the new algorithm", func() bool {
		round := startAndStopAfter(t, nodes, tn, sids, 300)
		prompt = append(prompt, round...)
		l.waitAll(t, idsOf(round), 30*time.Second, "after the restart")
		signed := map[string]bool{}
		for _, e := range round {
			a, _ := l.arrivalOf(e.id)
			for i, iss := range a.issuers {
				if a.algs[i] == "ES256" {
					signed[iss] = true
				}
			}
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
	for sid, n := range bySubscription(all) {
		waitAllSucceeded(t, nodes[0], tn, sid, n, 60*time.Second)
	}
	if path, most := l.mostAtOnce(); most > maxPerEndpoint {
		t.Errorf("the listener had up to %d attempts at once on %s, want at most %d (--max-per-endpoint over the cluster)", most, path, maxPerEndpoint)
	}
}

// startAndStopAfter sends batches to nodes until at least n events are
// acknowledged and returns them.
func startAndStopAfter(t *testing.T, nodes []*hookd, tn tenant, sids []uuid.UUID, n int) []ackedEvent {
	t.Helper()
	ld := startIntakeLoad(nodes, tn, sids, 60, n, nil, "after")
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
