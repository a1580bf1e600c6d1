package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"hookd/store"
	"hookd/store/pgtest"
)

// postgresIntakeEvents is the number of events the postgres phase sends
// in NDJSON batches (at --scale 1).
const postgresIntakeEvents = 200_000

// runPostgres measures hookd on PostgreSQL: a throw-away cluster of the
// machine's PostgreSQL server (store/pgtest, on a Unix socket, with the
// durable defaults: fsync and full-page writes on), one database per
// hookd. It measures the intake (NDJSON batches and single-event
// requests, as the intake phase does) and deliveries/s with EdDSA, the
// algorithm with which the store's share of a delivery is largest, with
// the database server's CPU per 1,000 deliveries. Each figure is set
// beside the embedded store's of the same run when that phase ran.
func (h *harness) runPostgres(ctx context.Context) (err error) {
	start := time.Now()
	// Not under the work directory: as root, the server runs as another
	// user, who must pass through every directory above its data.
	dir, err := os.MkdirTemp("", "hookd-bench-pg")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pg, err := pgtest.StartDurable(ctx, dir)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pg.Close()
	h.logf("postgres: a throw-away cluster started in %.1fs", time.Since(start).Seconds())

	if err := h.postgresIntake(ctx, pg); err != nil {
		return err
	}
	return h.postgresDelivery(ctx, pg)
}

// postgresIntake measures the intake on a fresh database.
func (h *harness) postgresIntake(ctx context.Context, pg *pgtest.Cluster) (err error) {
	const phase = "postgres intake"
	dsn, err := pg.NewDatabase(ctx)
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, h.bin, filepath.Join(h.work, "data-postgres-intake"), h.hc,
		append([]string{"--store", dsn}, exportServerFlags...)...)
	if err != nil {
		return err
	}
	defer h.stopServer(srv, &err)
	tn, err := srv.newTenant(ctx, uuid.NewString())
	if err != nil {
		return err
	}
	if _, err := srv.createSubscription(ctx, tn, subscriptionSpec{
		Title: "postgres", Endpoint: deadEndpoint, Events: []string{"entityUpdated"}, Enabled: false,
	}); err != nil {
		return err
	}
	before := h.rep.count()
	if _, _, err := h.intakeBatches(ctx, srv, tn, h.scaledN(postgresIntakeEvents, batchEvents), phase); err != nil {
		return err
	}
	// The figure: the intake stays in the thousands of events/s.
	if err := h.intakeSingles(ctx, srv, phase, atLeast(1000, " /s")); err != nil {
		return err
	}
	h.besideEmbedded(phase, "intake", before)
	return h.measureIdle(ctx, srv, phase, "the last intake request")
}

// postgresDelivery measures EdDSA deliveries/s on a fresh database and the
// database server's CPU per 1,000 deliveries.
func (h *harness) postgresDelivery(ctx context.Context, pg *pgtest.Cluster) (err error) {
	const phase = "postgres delivery EdDSA"
	dsn, err := pg.NewDatabase(ctx)
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, h.bin, filepath.Join(h.work, "data-postgres-delivery"), h.hc,
		append([]string{"--store", dsn}, deliveryServerFlags...)...)
	if err != nil {
		return err
	}
	defer h.stopServer(srv, &err)
	cpu0, err := pg.CPUTime()
	if err != nil {
		return err
	}
	deliveries := h.deliveries(deliveriesRSA)
	rate, err := h.measureDelivery(ctx, srv, phase, store.AlgEdDSA, deliveries)
	if err != nil {
		return err
	}
	cpu1, err := pg.CPUTime()
	if err != nil {
		return err
	}
	h.rep.add(phase, "database CPU per 1,000 deliveries", (cpu1-cpu0).Seconds()*1000/float64(deliveries)*1000, "ms", nil,
		fmt.Sprintf("the PostgreSQL server's processes over the whole measurement (%d deliveries, their intake included)", deliveries))
	if fresh := h.freshRates[store.AlgEdDSA]; fresh > 0 {
		h.rep.add(phase, "deliveries/s ÷ the embedded store's of this run", rate/fresh, "×", nil, "")
	}
	return h.measureIdle(ctx, srv, phase, "the last receipt")
}

// besideEmbedded adds, for each rate row phase added since row from, its
// ratio to the same row of the embedded store's phase embedded, when that
// ran in this run.
func (h *harness) besideEmbedded(phase, embedded string, from int) {
	for _, r := range h.rep.since(from) {
		if r.Phase != phase || r.Unit != "/s" {
			continue
		}
		if e, ok := h.rep.find(embedded, r.Metric); ok && e.Value > 0 {
			h.rep.add(phase, r.Metric+" ÷ the embedded store's", r.Value/e.Value, "×", nil, "")
		}
	}
}
