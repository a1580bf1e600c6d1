package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"hookd/delivery"
	"hookd/store"
	"hookd/store/bolt"
)

// Shape of the full-store phase: a store holding seven days of events at
// the size, filled through the store's own API (AddEvents, then
// RecordAttempts, as the intake and the dispatcher write them) under a
// clock that walks the seven days, then a hookd started on it.
const (
	fullStoreEvents = 10_000_000 // at --scale 1, of which the expired below
	fullStoreSubs   = 100
	// fullStoreExpired is how much older than the retention the oldest
	// events are: the janitor deletes them once hookd runs. 40 hours of
	// the 208 are 19 % of the events (1.9 million at --scale 1), so that
	// the deletion lasts through the latency window measured meanwhile
	// (from about 1 s to 21 s after hookd's start at --scale 1): at
	// --scale 0.02 and 0.05 the janitor deleted 50,000 to 65,000 events/s
	// with nothing else to do, 30 to 40 s for 1.9 million, where 6 hours
	// (345,000 events) took 6 s.
	fullStoreExpired = 40 * time.Hour
	// fullStoreFailEvery: one event in this many of subscriptions 1 to 99
	// fails at its attempt (status 500, no retry left); the others succeed
	// at their first.
	fullStoreFailEvery = 20
	// fullStoreExportFailures is how many events subscription 0 holds at
	// --scale 1, every one failed (status 500): the export measured is of
	// them. They are part of fullStoreEvents, spread evenly over the time
	// from fullStoreExportMargin after the retention's cutoff at the end
	// of the fill.
	fullStoreExportFailures = 1_000_000
	// fullStoreExportMargin keeps subscription 0's events clear of the
	// janitor during the phase, so that the export holds them all.
	fullStoreExportMargin = time.Hour
	// fullStoreExportWait bounds the full store's export.
	fullStoreExportWait = 15 * time.Minute
	// fullStoreLatencyRate is the single events per second, each to
	// deliverySubscriptions EdDSA subscriptions, whose intake-to-listener
	// latency the phase measures while the janitor deletes the expired
	// events and while the export runs.
	fullStoreLatencyRate = 250
	// fullStoreLatencyP99 is the bound of the delivery p99 while
	// the janitor deletes, in milliseconds.
	fullStoreLatencyP99 = 100
	// fullStoreJanitorWait bounds the wait, after the latency window, for
	// the janitor's first run to end.
	fullStoreJanitorWait = 5 * time.Minute
	// fullStoreMetricsPoll is how often the harness reads hookd's
	// janitor metric to learn when the first run's deletions ended.
	fullStoreMetricsPoll = 200 * time.Millisecond
	// fullStoreStep is the events recorded per fill transaction pair.
	fullStoreStep = 10_000
	// fullStoreJanitor is hookd's janitor interval in the phase, so that
	// it deletes during the measurements.
	fullStoreJanitor = "5s"
	// fullStoreReadyWait bounds hookd's start on the filled store.
	fullStoreReadyWait = 15 * time.Minute
	// fullStoreCalls is how many times each read call is timed.
	fullStoreCalls = 10
	// fullStoreTarget is the bound: the full store's intake and
	// deliveries/s at least this share of the fresh store's of the run.
	fullStoreTarget = 80
	// bytesPerEventTarget is the bound of the file's bytes per
	// stored event.
	bytesPerEventTarget = 600
)

// filled describes a filled store.
type filled struct {
	customer, client uuid.UUID
	secret           string
	subs             []uuid.UUID
	events, failed   int
	exportable       int // subscription 0's events, every one failed
	expired          int // events created before the retention's cutoff at the end of the fill
	took             time.Duration
	size             int64 // the file's bytes after the fill
}

// fillStore fills a new store in dir with n events, created from the
// retention plus fullStoreExpired ago until now, each delivered once with
// an RS256 token (RSA signatures are 256 random bytes: the store does not
// verify them, and signing ten million tokens would take hours of CPU).
// Subscription 0 gets exportable of them, every one failed, created from
// fullStoreExportMargin after the retention's cutoff on; the others go
// round subscriptions 1 to 99, one in fullStoreFailEvery failed.
func (h *harness) fillStore(ctx context.Context, dir string, n, exportable int) (f filled, err error) {
	var clock atomic.Int64
	db, err := bolt.Open(dir, bolt.Options{Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }})
	if err != nil {
		return f, err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	end := time.Now()
	start := end.Add(-store.DefaultRetention - fullStoreExpired)
	clock.Store(start.UnixNano())
	f.customer, f.client, f.secret = uuid.New(), uuid.New(), uuid.NewString()
	if _, err := db.CreateClient(f.customer, f.client, store.HashSecret(f.secret), delivery.NewKeySet); err != nil {
		return f, err
	}
	ks, err := db.KeySet(f.customer)
	if err != nil {
		return f, err
	}
	rs, ok := ks.Triple(store.AlgRS256)
	if !ok {
		return f, fmt.Errorf("fill: no RS256 keys")
	}
	header := base64.RawURLEncoding.EncodeToString(delivery.AppendHeader(nil, rs.Current.ID))
	issuer := "https://hooks.example.com/" + f.customer.String() + "/webhooks"
	endpoints := make([]string, fullStoreSubs)
	for i := range fullStoreSubs {
		s := store.Subscription{ID: uuid.New(), CustomerID: f.customer, Title: "full " + strconv.Itoa(i),
			Endpoint: "https://listener-" + strconv.Itoa(i) + ".example.com/webhooks/hookd", Events: []string{"entityUpdated"},
			Enabled: true, CreatedAt: start, UpdatedAt: start}
		if err := db.CreateSubscription(s, 0); err != nil {
			return f, err
		}
		f.subs, endpoints[i] = append(f.subs, s.ID), s.Endpoint
	}
	steps := max(1, (n+fullStoreStep-1)/fullStoreStep)
	per := (n + steps - 1) / steps
	span := end.Sub(start)
	// Subscription 0's events: exportable of the events of the steps from
	// firstExport on, evenly.
	firstExport := int((int64(fullStoreExpired+fullStoreExportMargin)*int64(steps) + int64(span) - 1) / int64(span))
	pool := (steps - firstExport) * per
	if exportable > pool/2 {
		return f, fmt.Errorf("fill: %d events for subscription 0 of %d after its margin: too many", exportable, pool)
	}
	toSub := make([]int, per)
	other := 0
	h.logf("full store: filling %d events over %d subscriptions (%d of them, failed, to subscription 0), %d transactions pairs, created over %v",
		steps*per, fullStoreSubs, exportable, steps, span.Round(time.Hour))
	rnd := rand.New(rand.NewPCG(1, 2))
	sig := make([]byte, 256)
	var claims, tok []byte
	evs := make([]store.NewEvent, 0, per)
	ds := make([]store.Delivery, 0, per)
	results := make([]store.AttemptResult, 0, per)
	t0 := time.Now()
	for step := range steps {
		if err := ctx.Err(); err != nil {
			return f, err
		}
		at := start.Add(time.Duration(int64(span) * int64(step) / int64(steps))).UTC()
		clock.Store(at.UnixNano())
		evs, ds, results = evs[:0], ds[:0], results[:0]
		if !at.After(end.Add(-store.DefaultRetention)) {
			f.expired += per
		}
		for k := range per {
			i := step*per + k
			if r := int64(i - firstExport*per); r >= 0 && (r+1)*int64(exportable)/int64(pool) > r*int64(exportable)/int64(pool) {
				toSub[k] = 0
			} else {
				toSub[k] = 1 + other%(fullStoreSubs-1)
				other++
			}
			evs = append(evs, store.NewEvent{Type: "entityUpdated", Txn: string(appendUUID(nil, i, 4)),
				Toe: at.Unix(), Payload: appendEventObject(nil, i, "user", 0, -1)})
			ds = append(ds, store.Delivery{SubscriptionID: f.subs[toSub[k]], Event: k})
		}
		added, err := db.AddEvents(evs, ds)
		if err != nil {
			return f, err
		}
		sent := at.Add(50 * time.Millisecond)
		clock.Store(sent.Add(20 * time.Millisecond).UnixNano())
		for k, a := range added {
			ne := evs[ds[k].Event]
			e := store.Event{ID: a.ID, CreatedAt: at, Type: ne.Type, Txn: ne.Txn, Toe: ne.Toe, Payload: ne.Payload}
			sub := toSub[ds[k].Event]
			claims = store.AppendEventClaims(claims[:0], &e, issuer, endpoints[sub])
			for j := 0; j < len(sig); j += 8 {
				v := rnd.Uint64()
				for b := range 8 {
					sig[j+b] = byte(v >> (8 * b))
				}
			}
			tok = append(append(tok[:0], header...), '.')
			tok = base64.RawURLEncoding.AppendEncode(tok, claims)
			tok = base64.RawURLEncoding.AppendEncode(append(tok, '.'), sig)
			r := store.AttemptResult{SubscriptionID: a.SubscriptionID, Seq: store.EventSeq(a.ID), StartedAt: sent,
				Endpoint: endpoints[sub], JWS: string(tok), StatusCode: http.StatusNoContent,
				Headers: []store.Header{{Name: "Date", Value: sent.Format(http.TimeFormat)}}, Outcome: store.Delivered}
			if sub == 0 || (step*per+k)%fullStoreFailEvery == 0 {
				r.StatusCode, r.Outcome, r.Reason, r.Code = http.StatusInternalServerError, store.Failed, "status 500", store.ReasonStatus5xx
				r.Headers = append(r.Headers, store.Header{Name: "Content-Type", Value: "text/plain; charset=utf-8"})
				f.failed++
				if sub == 0 {
					f.exportable++
				}
			}
			results = append(results, r)
		}
		if err := db.RecordAttempts(results); err != nil {
			return f, err
		}
		f.events += len(added)
		if step%100 == 99 {
			h.logf("full store: %d events in %.0f s", f.events, time.Since(t0).Seconds())
		}
	}
	f.took = time.Since(t0)
	st, err := os.Stat(db.Path())
	if err != nil {
		return f, err
	}
	f.size = st.Size()
	return f, nil
}

// runFullStore fills a store with seven days of events, starts hookd on it
// (its janitor running) and measures there what the fresh stores of the
// run measured: the p99 latency of single events while the janitor
// deletes the expired events, deliveries/s with EdDSA, intake in NDJSON
// batches, the event list and the summary, an export of subscription 0's
// failures; and the file's bytes per stored event.
func (h *harness) runFullStore(ctx context.Context) (err error) {
	const phase = "full store"
	dir := filepath.Join(h.work, "data-full-store")
	n := h.scaledN(fullStoreEvents, 2*fullStoreStep)
	f, err := h.fillStore(ctx, dir, n, h.scaledN(fullStoreExportFailures, fullStoreStep/10))
	if err != nil {
		return err
	}
	h.rep.add(phase, "events stored", float64(f.events), "", nil,
		fmt.Sprintf("created over the retention plus %v (%d of them before the retention); %d failed (status 500): the %d of subscription 0, and 1 in %d of the rest over subscriptions 1 to %d; the others succeeded at the first attempt",
			fullStoreExpired, f.expired, f.failed, f.exportable, fullStoreFailEvery, fullStoreSubs-1))
	h.rep.add(phase, "fill: events recorded/s", float64(f.events)/f.took.Seconds(), "/s", nil,
		fmt.Sprintf("%.0f s through store.AddEvents and store.RecordAttempts in the harness, %d events per transaction", f.took.Seconds(), fullStoreStep))
	h.rep.add(phase, "file bytes per stored event", float64(f.size)/float64(f.events), "B", atMost(bytesPerEventTarget, " B"),
		fmt.Sprintf("%.0f MB file; each event with its RS256 token (stored as its signature, header and issuer in the string table), response headers and history; %.1f %% of the events failed (their records also hold a reason and a failures index entry, their response headers an attempt details entry)",
			float64(f.size)/1e6, 100*float64(f.failed)/float64(f.events)))

	// The start's time on a large store: opening it reads its synced
	// freelist (before, bbolt read every page to rebuild it).
	t0 := time.Now()
	flags := append(slices.Clone(deliveryServerFlags), "--janitor-interval", fullStoreJanitor)
	srv, err := startServerWait(ctx, fullStoreReadyWait, h.bin, dir, h.hc, append(flags, exportServerFlags...)...)
	if err != nil {
		return err
	}
	defer h.stopServer(srv, &err)
	h.rep.add(phase, "hookd start to ready", time.Since(t0).Seconds(), "s", nil, "opening the filled store (its freelist synced: bbolt reads it instead of every page)")
	// hookd's janitor started its first run with hookd: the expired
	// events' deletion ends when its metric counts them.
	jan := watchJanitor(ctx, srv, t0)
	defer jan.stop()
	tn, err := srv.login(ctx, f.customer.String(), f.client.String(), f.secret)
	if err != nil {
		return err
	}
	if err := h.fullStoreJanitorLatency(ctx, srv, tn, f, jan, t0); err != nil {
		return err
	}

	sub := tn.path("/webhooks/subscriptions/" + f.subs[1].String())
	sub0 := tn.path("/webhooks/subscriptions/" + f.subs[0].String())
	for _, c := range []struct{ metric, path, note string }{
		{"event list, first page", sub + "/events", ""},
		{"event list of failures, first page", sub + "/events?state=failure", ""},
		{"summary", sub + "/summary", ""},
		{"event list of failures, first page, subscription 0", sub0 + "/events?state=failure", fmt.Sprintf("subscription 0: %d events, all failed", f.exportable)},
	} {
		var took []time.Duration
		for range fullStoreCalls {
			t := time.Now()
			if err := srv.call(ctx, http.MethodGet, c.path, tn.Token, nil, http.StatusOK, nil); err != nil {
				return err
			}
			took = append(took, time.Since(t))
		}
		slices.Sort(took)
		note := c.note
		if note == "" {
			note = fmt.Sprintf("subscription 1, one of %d with about %d events each", fullStoreSubs-1, (f.events-f.exportable)/(fullStoreSubs-1))
		}
		h.rep.add(phase, c.metric+": median answer", ms(took[len(took)/2]), "ms", nil,
			fmt.Sprintf("max %.1f ms over %d calls; %s", ms(took[len(took)-1]), len(took), note))
	}

	// The fresh store's deliveries the full store's are held against,
	// measured just before and just after them, and averaged: this
	// machine's speed drifts by more than the target's margin between
	// phases minutes apart, and one reference alone can land on a fast or a
	// slow moment.
	before, err := h.freshDelivery(ctx, srv, flags, freshBeforePhase)
	if err != nil {
		return err
	}
	rate, err := h.measureDelivery(ctx, srv, phase+" delivery EdDSA", store.AlgEdDSA, h.deliveriesOf(store.AlgEdDSA))
	if err != nil {
		return err
	}
	after, err := h.freshDelivery(ctx, srv, flags, freshAfterPhase)
	if err != nil {
		return err
	}
	fresh := (before + after) / 2
	earlier := ""
	if r := h.freshRates[store.AlgEdDSA]; r > 0 {
		earlier = fmt.Sprintf("; the delivery phase's, minutes earlier: %.0f /s", r)
	}
	h.rep.add(phase, "EdDSA deliveries/s ÷ the fresh store's", 100*rate/fresh, "%", atLeast(fullStoreTarget, " %"),
		fmt.Sprintf("%.0f /s against %.0f /s, the mean of a fresh store's just before (%.0f /s) and just after (%.0f /s)%s",
			rate, fresh, before, after, earlier))
	h.scaledByExchange(phase, "EdDSA deliveries/s ÷ the fresh store's, each scaled by its reference exchange",
		rate, phase+" delivery EdDSA", []freshRate{{before, freshBeforePhase + " delivery EdDSA"}, {after, freshAfterPhase + " delivery EdDSA"}})

	if err := h.intakeBeside(ctx, srv, flags, phase); err != nil {
		return err
	}
	st, err := os.Stat(filepath.Join(dir, bolt.FileName))
	if err != nil {
		return err
	}
	h.rep.add(phase, "file size at the end ÷ after the fill", 100*float64(st.Size())/float64(f.size), "%", nil,
		"before the export; the janitor deleted the events older than the retention meanwhile; freed pages are reused")
	return h.fullStoreExport(ctx, srv, tn, f)
}

// The report's phases of the fresh stores measured beside the full one:
// deliveries before and after the full store's, and the intake taking
// turns with the full store's.
const (
	freshBeforePhase = "full store's reference, fresh before"
	freshAfterPhase  = "full store's reference, fresh after"
	freshIntakePhase = "full store's reference, fresh intake"
)

// fullStoreIntakeRounds is how many turns the full store's intake and the
// fresh store's beside it take each: the fresh store's first, the full
// store's first in the next round, and so on, so that a drift of the
// machine's speed weighs on both alike.
const fullStoreIntakeRounds = 4

// freshDelivery pauses full (its janitor included) and measures, on a new
// hookd started with flags on an empty data directory, the delivery
// phase's EdDSA deliveries, reported in phase; it stops that hookd and
// resumes full.
func (h *harness) freshDelivery(ctx context.Context, full *server, flags []string, phase string) (rate float64, err error) {
	if err := full.pause(); err != nil {
		return 0, err
	}
	defer func() {
		if rerr := full.resume(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	srv, err := startServer(ctx, h.bin, filepath.Join(h.work, "data-"+profileSlug(phase)), h.hc, flags...)
	if err != nil {
		return 0, err
	}
	defer h.stopServer(srv, &err)
	return h.measureDelivery(ctx, srv, phase+" delivery EdDSA", store.AlgEdDSA, h.deliveriesOf(store.AlgEdDSA))
}

// intakeBeside sends the intake phase's NDJSON events to a disabled
// subscription of a new customer of full and, taking turns with it in
// fullStoreIntakeRounds rounds (the other one paused), as many to a new
// hookd started with flags on an empty data directory; it reports both
// rates, the full store's in phase, and their ratio.
func (h *harness) intakeBeside(ctx context.Context, full *server, flags []string, phase string) (err error) {
	// A disabled subscription of another customer (the full one has the
	// most subscriptions a customer may have), as in the intake phase: its
	// events are stored as failed and nothing delivers them.
	spec := subscriptionSpec{Title: "full store intake", Endpoint: deadEndpoint, Events: []string{"entityUpdated"}}
	ftn, err := full.newTenant(ctx, uuid.NewString())
	if err != nil {
		return err
	}
	if _, err := full.createSubscription(ctx, ftn, spec); err != nil {
		return err
	}
	if err := full.pause(); err != nil {
		return err
	}
	defer func() {
		if rerr := full.resume(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	fresh, err := startServer(ctx, h.bin, filepath.Join(h.work, "data-"+profileSlug(freshIntakePhase)), h.hc, flags...)
	if err != nil {
		return err
	}
	defer h.stopServer(fresh, &err)
	ntn, err := fresh.newTenant(ctx, uuid.NewString())
	if err != nil {
		return err
	}
	if _, err := fresh.createSubscription(ctx, ntn, spec); err != nil {
		return err
	}

	n := h.scaledN(intakeEvents, batchEvents)
	per := n / fullStoreIntakeRounds
	if per >= batchEvents {
		per -= per % batchEvents
	}
	h.logf("intake: %d rounds of %d events in NDJSON requests of up to %d, %d in flight, to the full store and to a fresh one in turn",
		fullStoreIntakeRounds, per, batchEvents, batchSenders)
	type side struct {
		srv, other *server
		tn         tenant
		phase      string
		with       string // the other, in the report's note
		accepted   int64
		took       time.Duration
		cpu        cpuUsage // core-seconds over the side's rounds
		rounds     []string // each round's events/s
	}
	fs := &side{srv: full, other: fresh, tn: ftn, phase: phase, with: "fresh store"}
	ns := &side{srv: fresh, other: full, tn: ntn, phase: freshIntakePhase, with: "full store"}
	var profiles []func()
	defer func() {
		// Both run again before fresh is stopped; a profile's request
		// waits for a paused hookd.
		_, _ = fresh.resume(), full.resume()
		for _, stop := range profiles {
			stop()
		}
	}()
	for r := range fullStoreIntakeRounds {
		order := []*side{ns, fs}
		if r%2 == 1 {
			order = []*side{fs, ns}
		}
		for _, sd := range order {
			if err := sd.other.pause(); err != nil {
				return err
			}
			if err := sd.srv.resume(); err != nil {
				return err
			}
			if r == 0 {
				// Its seconds run on while the other side takes its turn,
				// paused: it samples this side's first round.
				profiles = append(profiles, h.profileCPU(ctx, sd.srv, "cpu-intake-"+profileSlug(sd.phase)+".pprof"))
			}
			c0 := readCPU(sd.srv.PID)
			a, took, err := sendBatches(ctx, sd.srv, sd.tn, r*per, per)
			c1 := readCPU(sd.srv.PID)
			if err != nil {
				return err
			}
			sd.accepted += a
			sd.took += took
			sd.cpu = sd.cpu.plus(usageSince(c0, c1), c1.at.Sub(c0.at))
			sd.rounds = append(sd.rounds, fmt.Sprintf("%.0f", float64(a)/took.Seconds()))
		}
	}
	fullRate, freshRate := float64(fs.accepted)/fs.took.Seconds(), float64(ns.accepted)/ns.took.Seconds()
	note := func(sd *side) string {
		return fmt.Sprintf("%d events in %.1f s, %d rounds taking turns with the %s (events/s %s), %d requests in flight, durable; hookd's CPU %.1f µs per event; core-seconds over its rounds: hookd %.1f, harness %.1f, other processes %.1f, stolen %.1f, idle %.1f",
			sd.accepted, sd.took.Seconds(), fullStoreIntakeRounds, sd.with, strings.Join(sd.rounds, ", "), batchSenders,
			1e6*sd.cpu.Server/float64(sd.accepted), sd.cpu.Server, sd.cpu.Harness, sd.cpu.Other, sd.cpu.Steal, sd.cpu.Idle)
	}
	h.rep.add(phase, "NDJSON batches of 1,000: events accepted/s", fullRate, "/s", nil, note(fs))
	h.rep.add(freshIntakePhase, "NDJSON batches of 1,000: events accepted/s", freshRate, "/s", nil, note(ns))
	earlier := ""
	if r := h.freshIntake; r > 0 {
		earlier = fmt.Sprintf("; the intake phase's, minutes earlier: %.0f /s", r)
	}
	h.rep.add(phase, "NDJSON intake events/s ÷ the fresh store's", 100*fullRate/freshRate, "%", atLeast(fullStoreTarget, " %"),
		fmt.Sprintf("%.0f /s against %.0f /s on a fresh store taking turns with it%s", fullRate, freshRate, earlier))
	return nil
}

// janitorWatch reads hookd's janitor metric until the first run's
// deletion of expired events is counted.
type janitorWatch struct {
	cancel  context.CancelFunc
	done    chan struct{}
	ended   atomic.Int64 // since hookd's start, once counted
	deleted atomic.Int64 // the first run's count
}

// watchJanitor polls srv's /metrics every fullStoreMetricsPoll until
// hookd_janitor_removed_total of the expired events is above zero, and
// records when (since start) and the count. stop ends it.
func watchJanitor(ctx context.Context, srv *server, start time.Time) *janitorWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &janitorWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			if n := expiredRemoved(ctx, srv); n > 0 {
				w.deleted.Store(int64(n))
				w.ended.Store(int64(time.Since(start)))
				return
			}
			if sleepCtx(ctx, fullStoreMetricsPoll) != nil {
				return
			}
		}
	}()
	return w
}

// stop ends the polling and waits for it.
func (w *janitorWatch) stop() {
	w.cancel()
	<-w.done
}

// wait waits up to d for the first run's deletions to be counted.
func (w *janitorWatch) wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// result returns when the first run's deletions were counted (since
// hookd's start) and how many, or ok false while they were not.
func (w *janitorWatch) result() (ended time.Duration, deleted int64, ok bool) {
	if e := w.ended.Load(); e > 0 {
		return time.Duration(e), w.deleted.Load(), true
	}
	return 0, 0, false
}

// expiredRemoved returns hookd's hookd_janitor_removed_total of the
// expired events task, 0 when absent or unreadable.
func expiredRemoved(ctx context.Context, srv *server) float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		return 0
	}
	resp, err := srv.http.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "hookd_janitor_removed_total{") || !strings.Contains(line, `task="expired_events"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			return v
		}
	}
	return 0
}

// storedEvents returns the events hookd's summaries count over subs.
func storedEvents(ctx context.Context, srv *server, tn tenant, subs []uuid.UUID) (int64, error) {
	var total int64
	for _, id := range subs {
		var s struct{ Total int64 }
		if err := srv.call(ctx, http.MethodGet, tn.path("/webhooks/subscriptions/"+id.String()+"/summary"), tn.Token, nil, http.StatusOK, &s); err != nil {
			return 0, err
		}
		total += s.Total
	}
	return total, nil
}

// latencyTenant creates a customer with deliverySubscriptions EdDSA
// subscriptions to every event, each with its listener recording in a
// new sink; the caller closes the listeners.
func latencyTenant(ctx context.Context, srv *server, base time.Time, title string) (tenant, *sink, []*listener, error) {
	tn, err := srv.newTenant(ctx, uuid.NewString())
	if err != nil {
		return tn, nil, nil, err
	}
	snk := &sink{base: base, decode: true}
	var ls []*listener
	for i := range deliverySubscriptions {
		l, err := startListener(snk, answerOK)
		if err != nil {
			return tn, nil, ls, err
		}
		ls = append(ls, l)
		if _, err := srv.createSubscription(ctx, tn, subscriptionSpec{
			Title: title + " " + strconv.Itoa(i), Endpoint: l.URL, Events: []string{"entityUpdated"}, Enabled: true,
			Signing: &signingSpec{Alg: store.AlgEdDSA},
		}); err != nil {
			return tn, nil, ls, err
		}
	}
	return tn, snk, ls, nil
}

// fullStoreJanitorLatency measures the p99 intake-to-listener latency of
// single events at fullStoreLatencyRate right after hookd's start on the
// full store, while its janitor deletes the expired events, and counts
// the events the janitor deleted meanwhile by the summaries of the
// filled subscriptions.
func (h *harness) fullStoreJanitorLatency(ctx context.Context, srv *server, tn tenant, f filled, jan *janitorWatch, start time.Time) error {
	const phase = "full store"
	ltn, snk, ls, err := latencyTenant(ctx, srv, h.base, "full store janitor latency")
	defer closeListeners(ls)
	if err != nil {
		return err
	}
	before, err := storedEvents(ctx, srv, tn, f.subs)
	if err != nil {
		return err
	}
	dur := h.scaled(20*time.Second, 2*time.Second)
	from := time.Since(start)
	h.logf("%s: %d events/s to %d EdDSA subscriptions for %v while the janitor deletes", phase, fullStoreLatencyRate, deliverySubscriptions, dur)
	lat, _, lost, err := h.steadyLatency(ctx, []*server{srv}, ltn, snk, fullStoreLatencyRate, dur, deliverySubscriptions)
	if err != nil {
		return fmt.Errorf("%s: latency while the janitor deletes: %w", phase, err)
	}
	to := from + dur
	after, err := storedEvents(ctx, srv, tn, f.subs)
	if err != nil {
		return err
	}
	deleted := before - after
	jan.wait(ctx, fullStoreJanitorWait)
	janNote := fmt.Sprintf("the janitor's first run had not ended %v after the window", fullStoreJanitorWait)
	if ended, n, ok := jan.result(); ok {
		janNote = fmt.Sprintf("the janitor's first run deleted %d expired events in the %.1f s from hookd's start (read from its metric every %v), ", n, ended.Seconds(), fullStoreMetricsPoll)
		switch {
		case ended <= from:
			janNote += "before the window began: no overlap (a small --scale deletes too few)"
		case ended < to:
			janNote += fmt.Sprintf("within the window, %.1f s before its end", (to - ended).Seconds())
		default:
			janNote += fmt.Sprintf("through the window and %.1f s after its end", (ended - to).Seconds())
		}
	}
	h.rep.add(phase, "p99 intake to listener while the janitor deletes", ms(percentile(lat, 0.99)), "ms", atMost(fullStoreLatencyP99, " ms"),
		fmt.Sprintf("%d single events/s, each to %d EdDSA subscriptions of another customer, from %.1f to %.1f s after hookd's start: %d deliveries, %d missing after %v; max %.1f ms",
			fullStoreLatencyRate, deliverySubscriptions, from.Seconds(), to.Seconds(), len(lat), lost, drainWait, ms(lat[len(lat)-1])))
	h.rep.add(phase, "expired events deleted during the p99 window", float64(deleted), "", nil,
		fmt.Sprintf("the filled subscriptions' summaries: %d events before the window, %d after its last receipt; %d were older than the retention at the fill's end; %s",
			before, after, f.expired, janNote))
	return nil
}

// fullStoreExport exports subscription 0's failures through hookd's API,
// waits for the job, downloads the file and counts its lines; meanwhile it
// measures the p99 latency of single events as
// fullStoreJanitorLatency does.
func (h *harness) fullStoreExport(ctx context.Context, srv *server, tn tenant, f filled) error {
	const phase = "full store export"
	ltn, snk, ls, err := latencyTenant(ctx, srv, h.base, "full store export latency")
	defer closeListeners(ls)
	if err != nil {
		return err
	}
	jobs := tn.path("/webhooks/subscriptions/" + f.subs[0].String() + "/exports")
	h.logf("%s: %d failed events of subscription 0", phase, f.exportable)
	type done struct {
		job  exportJob
		took time.Duration
		err  error
	}
	ch := make(chan done, 1)
	go func() {
		job, took, err := exportJobDone(ctx, srv, jobs, tn.Token, "none", fullStoreExportWait)
		ch <- done{job, took, err}
	}()
	dur := h.scaled(20*time.Second, 2*time.Second)
	lat, answers, lost, lerr := h.steadyLatency(ctx, []*server{srv}, ltn, snk, fullStoreLatencyRate, dur, deliverySubscriptions)
	d := <-ch
	if d.err != nil {
		return fmt.Errorf("%s: %w (log: %s.log)", phase, d.err, srv.Data)
	}
	if lerr != nil {
		return fmt.Errorf("%s: latency during the export: %w", phase, lerr)
	}
	if d.job.EventCount != int64(f.exportable) {
		return fmt.Errorf("%s: the job holds %d events, want %d", phase, d.job.EventCount, f.exportable)
	}
	var lines lineCounter
	size, dl, err := h.fetch(ctx, srv, tn.Token, jobs+"/"+d.job.ID+"/download", &lines)
	if err != nil {
		return fmt.Errorf("%s: download: %w", phase, err)
	}
	if lines.n != int64(f.exportable) {
		return fmt.Errorf("%s: the file has %d lines, want %d", phase, lines.n, f.exportable)
	}
	h.rep.add(phase, "seconds to export", d.took.Seconds(), "s", nil,
		fmt.Sprintf("%d failed events of one subscription, request to completed state, polled every %v", f.exportable, exportPoll))
	h.rep.add(phase, "lines exported/s", float64(lines.n)/d.took.Seconds(), "/s", nil, "lines of the downloaded file ÷ seconds to export")
	h.rep.add(phase, "file size", float64(size)/1e6, "MB", nil, fmt.Sprintf("downloaded through the API in %.2f s, %d lines", dl.Seconds(), lines.n))
	overlap := "the export still ran at the window's end"
	if d.took < dur {
		overlap = fmt.Sprintf("the export ran for the first %.1f s of the %.1f s", d.took.Seconds(), dur.Seconds())
	}
	h.rep.add(phase, "p99 intake to listener during the export", ms(percentile(lat, 0.99)), "ms", nil,
		fmt.Sprintf("%d single events/s, each to %d EdDSA subscriptions of another customer, sent from the export's request for %.1f s (%s): %d deliveries, %d missing after %v",
			fullStoreLatencyRate, deliverySubscriptions, dur.Seconds(), overlap, len(lat), lost, drainWait))
	h.rep.add(phase, "p99 intake answer (202) during the export", ms(percentile(answers, 0.99)), "ms", nil,
		"the same events' requests, each answered once the event is durable")
	return nil
}

// lineCounter is a writer that counts newlines.
type lineCounter struct{ n int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// freshRate is a fresh store's rate and the report's phase it was
// measured in.
type freshRate struct {
	rate  float64
	phase string
}

// scaledByExchange adds the ratio of rate (measured in ratePhase) to the
// mean of the fresh rates, each multiplied by the CPU of the plain HTTP
// exchange timed beside it: the machine's speed drifts between phases
// minutes apart (the same exchange has cost 59 µs in one phase and 100 µs
// in another of the same run), and a rate measured while the machine was
// slower is that much lower for reasons of its own. A reading aid for the
// plain ratio, which is what its target holds.
func (h *harness) scaledByExchange(phase, metric string, rate float64, ratePhase string, fresh []freshRate) {
	a, ok := h.rep.find(ratePhase, exchangeMetric)
	if !ok || a.Value <= 0 || len(fresh) == 0 {
		return
	}
	var sum float64
	took := make([]string, len(fresh))
	for i, f := range fresh {
		b, ok := h.rep.find(f.phase, exchangeMetric)
		if !ok || b.Value <= 0 || f.rate <= 0 {
			return
		}
		sum += f.rate * b.Value
		took[i] = fmt.Sprintf("%.1f", b.Value)
	}
	h.rep.add(phase, metric, 100*(rate*a.Value)/(sum/float64(len(fresh))), "%", nil,
		fmt.Sprintf("the exchange took %.1f µs beside the full store's deliveries and %s µs beside the fresh stores'", a.Value, strings.Join(took, " and ")))
}
