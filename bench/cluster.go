package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5"

	"hookd/store"
	"hookd/store/pgtest"
)

// clusterSizes are the node counts the cluster phase measures, each on a
// fresh database of one PostgreSQL server.
var clusterSizes = []int{1, 3}

// clusterRounds is how many times the cluster phase measures each size,
// the sizes taking turns, so that the machine's drift between two runs
// (minutes apart) weighs on both sizes alike.
const clusterRounds = 3

// clusterEvents is the number of events of each cluster run's backlog (at
// --scale 1); each goes to deliverySubscriptions subscriptions.
const clusterEvents = 20000

// clusterLatencyRate is the rate of single events, spread over the
// nodes, whose intake-to-listener latency the cluster phase measures.
const clusterLatencyRate = 200

// runCluster measures hookd as a cluster: one node, then three, on a
// fresh database each of one throw-away, durable PostgreSQL server (as the
// postgres phase). For each: EdDSA deliveries/s of a backlog taken in
// through every node's intake, the database server's CPU per 1,000
// deliveries, and the p99 intake-to-listener latency at
// clusterLatencyRate single events/s sent round the nodes. It reports
// three nodes' rate as a share of one node's: on one machine the nodes
// share its CPUs, so that share says what coordinating them costs.
func (h *harness) runCluster(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "hookd-bench-cluster")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pg, err := pgtest.StartDurable(ctx, dir)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer pg.Close()
	rates := map[int][]float64{}
	for round := range clusterRounds {
		for _, n := range clusterSizes {
			phase := fmt.Sprintf("cluster of %d", n)
			if round > 0 {
				phase += fmt.Sprintf(", run %d", round+1)
			}
			rate, err := h.clusterRun(ctx, pg, n, phase)
			if err != nil {
				return err
			}
			rates[n] = append(rates[n], rate)
		}
	}
	mean := func(xs []float64) float64 {
		sum := 0.0
		for _, x := range xs {
			sum += x
		}
		return sum / float64(max(len(xs), 1))
	}
	if one, three := mean(rates[1]), mean(rates[3]); one > 0 {
		var each []string
		for i := range rates[1] {
			each = append(each, fmt.Sprintf("%.1f %%", rates[3][i]/rates[1][i]*100))
		}
		h.rep.add("cluster", "3 nodes' deliveries/s ÷ 1 node's", three/one*100, "%", atLeast(90, " %"),
			fmt.Sprintf("means of %d runs each, the sizes taking turns (run by run: %s); on one machine the nodes share its CPUs: the share says what coordinating them costs",
				clusterRounds, strings.Join(each, ", ")))
	}
	return nil
}

// clusterRun starts n nodes on a fresh database and measures them,
// reporting under phase; it returns their deliveries/s.
func (h *harness) clusterRun(ctx context.Context, pg *pgtest.Cluster, n int, phase string) (rate float64, err error) {
	dsn, err := pg.NewDatabase(ctx)
	if err != nil {
		return 0, err
	}
	// Dropped at the end (after the nodes stopped), so that the
	// autovacuum of this run's tables does not fall in the next run.
	defer func() {
		if derr := pg.DropDatabase(context.WithoutCancel(ctx), dsn); derr != nil && err == nil {
			err = derr
		}
	}()
	var nodes []*server
	defer func() {
		for _, s := range nodes {
			h.stopServer(s, &err)
		}
	}()
	for i := range n {
		s, err := startServer(ctx, h.bin, filepath.Join(h.work, fmt.Sprintf("data-%s-%d", strings.NewReplacer(" ", "-", ",", "").Replace(phase), i)), h.hc,
			append([]string{"--store", dsn, "--node-name", "bench-" + strconv.Itoa(i)}, deliveryServerFlags...)...)
		if err != nil {
			return 0, err
		}
		nodes = append(nodes, s)
	}
	tn, err := nodes[0].newTenant(ctx, uuid.NewString())
	if err != nil {
		return 0, err
	}
	snk := &sink{base: h.base, decode: true}
	var ls []*listener
	defer func() { closeListeners(ls) }()
	for i := range deliverySubscriptions {
		l, err := startListener(snk, answerOK)
		if err != nil {
			return 0, err
		}
		ls = append(ls, l)
		if _, err := nodes[i%n].createSubscription(ctx, tn, subscriptionSpec{
			Title: "cluster " + strconv.Itoa(i), Endpoint: l.URL, Events: []string{"entityUpdated"}, Enabled: true,
			Signing: &signingSpec{Alg: store.AlgEdDSA},
		}); err != nil {
			return 0, err
		}
	}
	// Let each node's heartbeat count the others (a node alone claims
	// nothing; the others claim from then on).
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return 0, err
	}
	if err := withoutAutovacuum(ctx, dsn); err != nil {
		return 0, err
	}

	events := h.scaledN(clusterEvents, 200)
	total := events * deliverySubscriptions
	h.logf("%s: %d events x %d subscriptions = %d EdDSA deliveries, the intake round the nodes", phase, events, deliverySubscriptions, total)
	cpu0, err := pg.CPUTime()
	if err != nil {
		return 0, err
	}
	nodes0 := nodesCPU(nodes)
	start := time.Now()
	for from, k := 0, 0; from < events; from, k = from+batchEvents, k+1 {
		if _, err := nodes[k%n].postEvents(ctx, tn.Customer, ndjsonBatch(from, min(batchEvents, events-from), "user"), true); err != nil {
			return 0, err
		}
	}
	// The steady state: from the end of the intake to the 95% receipt, as
	// the delivery phase measures it.
	c0, t0 := snk.count.Load(), time.Now()
	db0, err := readDBActivity(ctx, dsn)
	if err != nil {
		return 0, err
	}
	steadyEnd := int64(total) * 95 / 100
	deadline := time.Now().Add(max(2*time.Minute, time.Duration(total)*time.Second/200))
	for snk.count.Load() < steadyEnd && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	c1, t1 := snk.count.Load(), time.Now()
	db1, err := readDBActivity(ctx, dsn)
	if err != nil {
		return 0, err
	}
	for snk.count.Load() < int64(total) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	cpu1, err := pg.CPUTime()
	if err != nil {
		return 0, err
	}
	nodesUsed := nodesCPU(nodes) - nodes0
	if got := snk.count.Load(); got < int64(total) {
		return 0, fmt.Errorf("%s: %d of %d deliveries arrived before the deadline", phase, got, total)
	}
	what := "from the end of the intake to the 95% receipt"
	rate = float64(c1-c0) / t1.Sub(t0).Seconds()
	if c1-c0 < int64(total)/2 {
		// Most was delivered during the intake (a tiny --scale): the
		// whole run's rate instead.
		what, rate = "over the whole run, the intake included (too little after it)", float64(total)/took.Seconds()
	}
	h.rep.add(phase, "EdDSA deliveries/s (steady)", rate, "/s", nil,
		fmt.Sprintf("%s; %d deliveries in %.1f s in all; meanwhile the database vacuumed tables %d times by itself, and its backends wrote %.2f buffers per delivery",
			what, total, took.Seconds(), db1.autovacuums-db0.autovacuums, float64(db1.backendWrites-db0.backendWrites)/float64(max(c1-c0, 1))))
	h.rep.add(phase, "database CPU per 1,000 deliveries", (cpu1-cpu0).Seconds()*1000/float64(total)*1000, "ms", nil,
		"the PostgreSQL server's processes over the intake and the deliveries")
	h.rep.add(phase, "hookd CPU per 1,000 deliveries", nodesUsed.Seconds()*1000/float64(total)*1000, "ms", nil,
		fmt.Sprintf("the %d hookd processes together, over the intake and the deliveries", n))

	latNodes0, latDB0 := nodesCPU(nodes), time.Duration(0)
	if latDB0, err = pg.CPUTime(); err != nil {
		return 0, err
	}
	latStart := time.Now()
	lat, answers, lost, err := h.steadyLatency(ctx, nodes, tn, snk, clusterLatencyRate, h.scaled(20*time.Second, 2*time.Second), deliverySubscriptions)
	if err != nil {
		return 0, fmt.Errorf("cluster latency: %w", err)
	}
	latDB1, err := pg.CPUTime()
	if err != nil {
		return 0, err
	}
	window := time.Since(latStart).Seconds()
	latNodes, latDB := (nodesCPU(nodes)-latNodes0).Seconds()/window, (latDB1-latDB0).Seconds()/window
	p99 := percentile(lat, 0.99)
	h.rep.add(phase, fmt.Sprintf("p99 intake to listener at %d events/s", clusterLatencyRate), float64(p99.Microseconds())/1000, "ms", nil,
		fmt.Sprintf("p50 %.1f ms, p90 %.1f ms (the intake's answer: p50 %.1f, p99 %.1f ms); single events sent round the nodes, each to %d subscriptions; %d deliveries missing after %v; meanwhile hookd used %.2f cores, the database %.2f",
			ms(percentile(lat, 0.5)), ms(percentile(lat, 0.9)), ms(percentile(answers, 0.5)), ms(percentile(answers, 0.99)), deliverySubscriptions, lost, drainWait, latNodes, latDB))
	return rate, nil
}

// withoutAutovacuum turns the autovacuum off for the tables of the
// database of dsn (hookd's, created by its migrations). Its first pass over
// a new database comes at a moment of its own, about a minute after the
// database's creation: in the window of some runs and not of others, more
// often of the three nodes', which last longer, and a run with it measured
// a third less than one without. The database is dropped at the end of its
// run; the dead row versions of one run (about two per delivery) cost
// both sizes alike.
func withoutAutovacuum(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("autovacuum off: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `DO $$
DECLARE t text;
BEGIN
	FOR t IN SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' LOOP
		EXECUTE 'ALTER TABLE ' || t || ' SET (autovacuum_enabled = false)';
	END LOOP;
END $$`)
	if err != nil {
		return fmt.Errorf("autovacuum off: %w", err)
	}
	return nil
}

// nodesCPU is the CPU time the processes of nodes used so far.
func nodesCPU(nodes []*server) time.Duration {
	var ticks uint64
	for _, s := range nodes {
		t, _ := procTicks(fmt.Sprintf("/proc/%d/stat", s.PID))
		ticks += t
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// dbActivity is what a PostgreSQL server did by itself so far that costs
// a measurement of deliveries CPU at a moment of its own choosing: the
// autovacuum's passes over the tables of one database, and the buffers
// its backends had to write out themselves (shared_buffers full of
// dirty pages).
type dbActivity struct {
	autovacuums   int64
	backendWrites int64
}

func readDBActivity(ctx context.Context, dsn string) (dbActivity, error) {
	var a dbActivity
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return a, fmt.Errorf("database activity: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = conn.QueryRow(ctx, `SELECT (SELECT coalesce(sum(autovacuum_count), 0)::bigint FROM pg_stat_user_tables),
	(SELECT buffers_backend FROM pg_stat_bgwriter)`).Scan(&a.autovacuums, &a.backendWrites)
	if err != nil {
		return a, fmt.Errorf("database activity: %w", err)
	}
	return a, nil
}
