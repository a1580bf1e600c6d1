package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Shape of the intake phase.
const (
	batchEvents = 1000 // events per NDJSON request
	// intakeEvents is how many events the NDJSON measurement sends at
	// --scale 1, on the fresh store and on the full one alike (about ten
	// seconds of intake each).
	intakeEvents  = 1_000_000
	batchSenders  = 4  // NDJSON requests in flight at once
	singleClients = 32 // concurrent single-event clients
	// deadEndpoint is the endpoint of disabled subscriptions: never called.
	deadEndpoint = "http://127.0.0.1:9/hook"
)

// exportSetup is what the intake phase leaves for the export phase: a
// stopped hookd's data directory holding the failed events of one
// subscription.
type exportSetup struct {
	data   string
	tenant tenant
	sub    string
	events int
}

// exportServerFlags are the flags of the intake and export hookd: no
// cooldown, so that the subscription can export right away.
var exportServerFlags = []string{"--export-cooldown", "0"}

// runIntake measures the intake with NDJSON batches (the events are the
// failed events of the export phase) and with single-event requests.
func (h *harness) runIntake(ctx context.Context) error {
	return h.intake(ctx, true)
}

// intake starts the intake hookd on a fresh data directory, sends the
// export phase's events as NDJSON batches and, when singles, runs the
// single-event clients; then it stops hookd.
//
// Events go to disabled subscriptions: they are stored, durably and with
// the same writes as for enabled ones, as failed (the export phase needs
// them so), and no delivery competes for the CPU. The delivery phase
// measures delivery on its own.
func (h *harness) intake(ctx context.Context, singles bool) (err error) {
	dir := filepath.Join(h.work, "data-export")
	srv, err := startServer(ctx, h.bin, dir, h.hc, exportServerFlags...)
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	tn, err := srv.newTenant(ctx, uuid.NewString())
	if err != nil {
		return err
	}
	sub, err := srv.createSubscription(ctx, tn, subscriptionSpec{
		Title: "export", Endpoint: deadEndpoint, Events: []string{"entityUpdated"}, Enabled: false,
	})
	if err != nil {
		return err
	}
	n := h.scaledN(intakeEvents, batchEvents)
	_, sent, err := h.intakeBatches(ctx, srv, tn, n, "intake")
	if err != nil {
		return err
	}
	h.exported = &exportSetup{data: dir, tenant: tn, sub: sub, events: sent}
	if singles {
		if err := h.intakeSingles(ctx, srv, "intake", atLeast(5000, " /s")); err != nil {
			return err
		}
	}
	return h.measureIdle(ctx, srv, "intake", "the last intake request")
}

// intakeBatches sends n events as NDJSON requests of batchEvents from
// batchSenders concurrent senders and returns the events accepted per
// second and how many it sent: n rounded up to whole batches. The figures
// go under phase; the intake phase's is held to the target and kept for
// comparisons.
func (h *harness) intakeBatches(ctx context.Context, srv *server, tn tenant, n int, phase string) (rate float64, sent int, err error) {
	size := min(batchEvents, n)
	batches := (n + size - 1) / size
	h.logf("intake: %d events in %d NDJSON requests of %d, %d in flight", batches*size, batches, size, batchSenders)
	rss := sampleRSS(srv.PID)
	stopProfile := h.profileCPU(ctx, srv, "cpu-intake-"+profileSlug(phase)+".pprof")
	accepted, took, err := sendBatches(ctx, srv, tn, 0, batches*size)
	win := rss.end()
	stopProfile()
	if err != nil {
		return 0, 0, err
	}
	rate = float64(accepted) / took.Seconds()
	var t *target
	if phase == "intake" {
		t = atLeast(20000, " /s")
		h.freshIntake = rate
	}
	h.rep.add(phase, "NDJSON batches of 1,000: events accepted/s", rate, "/s", t,
		fmt.Sprintf("%d events in %.1f s, %d requests in flight, durable", accepted, took.Seconds(), batchSenders))
	h.rep.addWindow(phase, "NDJSON batches: ", win, nil, "")
	return rate, int(accepted), nil
}

// sendBatches sends events from to from+n (n a multiple of batchEvents or
// less than one batch) to tn's customer as NDJSON requests of up to
// batchEvents from batchSenders concurrent senders, and returns how many
// were accepted and how long it took. Fewer accepted than sent is an
// error.
func sendBatches(ctx context.Context, srv *server, tn tenant, from, n int) (accepted int64, took time.Duration, err error) {
	size := min(batchEvents, n)
	batches := n / size
	var next, ok atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, batchSenders)
	start := time.Now()
	for range batchSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, size*400)
			for {
				i := int(next.Add(1) - 1)
				if i >= batches || ctx.Err() != nil {
					return
				}
				// Built as sent, every event distinct: about 1% of the
				// time hookd takes to store it.
				buf = buf[:0]
				for e := from + i*size; e < from+(i+1)*size; e++ {
					buf = appendIntakeLine(buf, e, "user", 0, -1)
					buf = append(buf, '\n')
				}
				a, err := srv.postEvents(ctx, tn.Customer, buf, true)
				if err != nil {
					errs <- err
					return
				}
				ok.Add(int64(a.Accepted))
			}
		}()
	}
	wg.Wait()
	took = time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if got := ok.Load(); got != int64(batches*size) {
		return 0, 0, fmt.Errorf("intake: %d events accepted, want %d", got, batches*size)
	}
	return ok.Load(), took, nil
}

// intakeSingles runs singleClients clients that each send single-event
// requests back to back for the phase's duration.
func (h *harness) intakeSingles(ctx context.Context, srv *server, phase string, t *target) error {
	tn, err := srv.newTenant(ctx, uuid.NewString())
	if err != nil {
		return err
	}
	if _, err := srv.createSubscription(ctx, tn, subscriptionSpec{
		Title: "singles", Endpoint: deadEndpoint, Events: []string{"entityUpdated"}, Enabled: false,
	}); err != nil {
		return err
	}
	d := h.scaled(20*time.Second, 500*time.Millisecond)
	h.logf("intake: single-event requests from %d clients for %v", singleClients, d)
	var accepted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, singleClients)
	lat := make([][]time.Duration, singleClients)
	rss := sampleRSS(srv.PID)
	start := time.Now()
	stopAt := start.Add(d)
	for c := range singleClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 512)
			for i := c; time.Now().Before(stopAt) && ctx.Err() == nil; i += singleClients {
				buf = appendIntakeLine(buf[:0], i, "user", 0, -1)
				t := time.Now()
				a, err := srv.postEvents(ctx, tn.Customer, buf, false)
				if err != nil {
					errs <- err
					return
				}
				lat[c] = append(lat[c], time.Since(t))
				accepted.Add(int64(a.Accepted))
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	win := rss.end()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return fmt.Errorf("intake: no single-event request was answered")
	}
	slices.Sort(all)
	rate := float64(accepted.Load()) / took.Seconds()
	h.rep.add(phase, "single-event requests, 32 clients: events accepted/s", rate, "/s", t,
		fmt.Sprintf("%d events in %.1f s, durable", accepted.Load(), took.Seconds()))
	h.rep.add(phase, "single-event requests: p99 answer", float64(percentile(all, 0.99))/float64(time.Millisecond), "ms", nil, "")
	h.rep.addWindow(phase, "single-event requests: ", win, nil, "")
	return nil
}
