package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// deliveryServerFlags are the flags of the hookd of the delivery, latency
// and isolation phases (each phase starts its own on a fresh data
// directory): a short attempt timeout and a retry every second keep the
// misbehaving listeners of the isolation phase busy.
var deliveryServerFlags = []string{
	"--attempt-timeout", "2s",
	"--retry-schedule", "0s,1s,1s,1s,1s,1s",
	"--retry-jitter", "0",
	"--shutdown-grace", "2s",
}

// deliverySubscriptions is the number of subscriptions (and listeners) of
// the delivery phase; every event fans out to each.
const deliverySubscriptions = 4

// startPhaseServer starts a hookd with deliveryServerFlags on a fresh data
// directory named for the phase ("latency at 250/s": data-latency-at-250-s).
func (h *harness) startPhaseServer(ctx context.Context, phase string) (*server, error) {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(phase))
	return startServer(ctx, h.bin, filepath.Join(h.work, "data-"+name), h.hc, deliveryServerFlags...)
}

// stopServer stops srv; an error is returned unless err is already set.
func (h *harness) stopServer(srv *server, err *error) {
	if serr := srv.stop(); serr != nil && *err == nil {
		*err = serr
	}
}

// Interleaving of the delivery phase: hookd delivers for deliveryRun, then
// is paused while the harness runs a pure signing slice of signSlice (the
// two loops take turns), so that both rates are measured under the same
// conditions of the machine, a few seconds apart.
const (
	deliveryRun = 2 * time.Second
	// pauseSettle lets the requests hookd wrote before the pause reach
	// the listeners before the slice starts.
	pauseSettle = 50 * time.Millisecond
	signSlice   = 400 * time.Millisecond
)

// The deliveries of one measurement at --scale 1. RS256 delivers about
// 1,500 /s here, so deliveriesRSA take some 27 s of deliveries and about
// a dozen windows; ES256 and EdDSA deliver six times as fast, so the same
// count would last four seconds, two windows and one signing slice of each
// loop, and a single second of the machine's drift would decide the
// figure: deliveriesFast give them as many windows as RS256 has.
const (
	deliveriesRSA  = 40_000
	deliveriesFast = 160_000
)

// deliveriesOf is the number of deliveries measureDelivery makes for alg
// on the embedded store, scaled.
func (h *harness) deliveriesOf(alg string) int {
	if alg == store.AlgRS256 {
		return h.deliveries(deliveriesRSA)
	}
	return h.deliveries(deliveriesFast)
}

// deliveries is n scaled (400 at least) and rounded up to whole events
// for each of measureDelivery's subscriptions.
func (h *harness) deliveries(n int) int {
	perSub := (h.scaledN(n, 400) + deliverySubscriptions - 1) / deliverySubscriptions
	return perSub * deliverySubscriptions
}

// runDelivery runs the delivery phase once per algorithm of benchAlgs,
// each on a fresh hookd whose subscriptions sign with it, and holds the
// faster algorithms' rates against RS256's of the same run. RS256 is
// measured first and once more after the faster algorithms (phase
// deliveryAgainPhase), and they are held against the mean of the two, so
// that the machine's drift over those minutes weighs on both sides alike.
func (h *harness) runDelivery(ctx context.Context) error {
	rates := map[string]float64{}
	var failed []string
	measure := func(alg, phase string) float64 {
		if ctx.Err() != nil {
			return 0
		}
		rate, err := h.runDeliveryAlg(ctx, alg, phase)
		if err != nil {
			h.logf("%s failed: %v", phase, err)
			failed = append(failed, phase+": "+err.Error())
			return 0
		}
		return rate
	}
	for _, alg := range h.cfg.algs {
		if rate := measure(alg, deliveryPhase(alg)); rate > 0 {
			rates[alg] = rate
		}
	}
	before := rates[store.AlgRS256]
	ref, refNote := before, ""
	if before > 0 && len(rates) > 1 {
		if after := measure(store.AlgRS256, deliveryAgainPhase); after > 0 {
			ref = (before + after) / 2
			refNote = fmt.Sprintf(", the mean of RS256's before (%.0f /s) and after (%.0f /s) the faster algorithms", before, after)
		}
	}
	for _, alg := range h.cfg.algs {
		rate, ok := rates[alg]
		if !ok || ref <= 0 || alg == store.AlgRS256 {
			continue
		}
		var t *target
		if f := algTargetFactor[alg]; f > 0 {
			t = atLeast(f, "×")
		}
		h.rep.add(deliveryPhase(alg), "deliveries/s ÷ RS256 deliveries/s of this run", rate/ref, "×", t,
			fmt.Sprintf("%.0f /s against %.0f /s%s", rate, ref, refNote))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// deliveryAgainPhase is the report's phase of RS256's second delivery
// run, after the faster algorithms'.
const deliveryAgainPhase = "delivery RS256 again"

// algTargetFactor is the target for each faster algorithm's
// deliveries/s, as a multiple of RS256's of the same run.
var algTargetFactor = map[string]float64{store.AlgES256: 3, store.AlgEdDSA: 5}

// eddsaMinRate is the floor of EdDSA deliveries/s on the 2-core
// machine, the listeners on the same cores.
const eddsaMinRate = 5000

// exchangeMetric is the report's row of the plain HTTP exchange timed
// beside each delivery measurement.
const exchangeMetric = "reference: CPU of a plain net/http exchange"

// deliveryPhase is the report's phase of the delivery run of alg:
// "delivery" for RS256 (the figures of the earlier rounds), else
// "delivery <alg>".
func deliveryPhase(alg string) string {
	if alg == store.AlgRS256 {
		return "delivery"
	}
	return "delivery " + alg
}

// runDeliveryAlg measures the delivery rate of hookd to healthy listeners
// whose subscriptions sign with alg and the machine's pure signing rate of
// alg, interleaved, reports their ratio under phase and returns the
// delivery rate.
func (h *harness) runDeliveryAlg(ctx context.Context, alg, phase string) (rate float64, err error) {
	srv, err := h.startPhaseServer(ctx, phase)
	if err != nil {
		return 0, err
	}
	defer h.stopServer(srv, &err)
	if rate, err = h.measureDelivery(ctx, srv, phase, alg, h.deliveriesOf(alg)); err != nil {
		return 0, err
	}
	if phase == deliveryPhase(alg) {
		h.freshRates[alg] = rate
	}
	return rate, h.measureIdle(ctx, srv, phase, "the last receipt")
}

// measureDelivery measures, on the running srv, the delivery rate of
// total deliveries (whole events for each, see deliveries) to
// deliverySubscriptions new subscriptions signing with alg, interleaved
// with the pure signing loops of alg, reports the figures under phase and
// returns the delivery rate.
func (h *harness) measureDelivery(ctx context.Context, srv *server, phase, alg string, total int) (rate float64, err error) {
	defer func() { _ = srv.resume() }() // never leave hookd paused
	loops, err := newSignLoops(alg)
	if err != nil {
		return 0, err
	}
	tn, err := srv.newTenant(ctx, uuid.NewString())
	if err != nil {
		return 0, err
	}
	snk := &sink{base: h.base}
	var ls []*listener
	defer func() { closeListeners(ls) }()
	for i := range deliverySubscriptions {
		l, err := startListener(snk, answerOK)
		if err != nil {
			return 0, err
		}
		ls = append(ls, l)
		if _, err := srv.createSubscription(ctx, tn, subscriptionSpec{
			Title: "delivery " + strconv.Itoa(i), Endpoint: l.URL, Events: []string{"entityUpdated"}, Enabled: true,
			Signing: &signingSpec{Alg: alg},
		}); err != nil {
			return 0, err
		}
	}

	perSub := total / deliverySubscriptions
	h.logf("%s: %d events x %d subscriptions = %d deliveries, hookd paused every %v for a pure signing slice of %v",
		phase, perSub, deliverySubscriptions, total, deliveryRun, signSlice)
	rss := sampleRSS(srv.PID)
	start := time.Now()
	for from := 0; from < perSub; from += 1000 {
		n := min(1000, perSub-from)
		if _, err := srv.postEvents(ctx, tn.Customer, ndjsonBatch(from, n, "user"), true); err != nil {
			rss.end()
			return 0, err
		}
	}

	stopProfile := h.profileDelivery(ctx, srv, phase, alg)
	defer stopProfile()

	// The steady state: from the end of the intake (so that the intake's
	// own work is not in it) to the 95% receipt (so that the tail, where
	// fewer lanes have work, is not either), pauses left out.
	steadyEnd := int64(total) * 95 / 100
	deadline := time.Now().Add(max(2*time.Minute, time.Duration(total)*time.Second/200))
	var delivered int64
	var running, paused time.Duration
	var steadyCPU cpuUsage // summed over the running windows, in core-seconds
	windows := 0
	hookdTurn := true
	for snk.count.Load() < steadyEnd && time.Now().Before(deadline) && ctx.Err() == nil {
		c0, t0, cpu0 := snk.count.Load(), time.Now(), readCPU(srv.PID)
		for time.Since(t0) < deliveryRun && snk.count.Load() < steadyEnd {
			time.Sleep(10 * time.Millisecond)
		}
		c1 := snk.count.Load()
		cpu1 := readCPU(srv.PID)
		delivered += c1 - c0
		running += time.Since(t0)
		steadyCPU = steadyCPU.plus(usageSince(cpu0, cpu1), cpu1.at.Sub(cpu0.at))
		windows++
		if c1 >= steadyEnd {
			break
		}
		p0 := time.Now()
		if err := srv.pause(); err != nil {
			rss.end()
			return 0, err
		}
		time.Sleep(pauseSettle)
		loops.slice(signSlice, hookdTurn)
		hookdTurn = !hookdTurn
		// Collect the slice's garbage while hookd is still paused, so that
		// the harness's CPU in the next window is the listeners' own.
		runtime.GC()
		if err := srv.resume(); err != nil {
			rss.end()
			return 0, err
		}
		paused += time.Since(p0)
	}
	for snk.count.Load() < int64(total) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start) - paused
	win := rss.end()
	if got := snk.count.Load(); got < int64(total) {
		return 0, fmt.Errorf("%s: %d of %d deliveries arrived before the deadline", phase, got, total)
	}
	// A run too short for a pause of each kind measures the rest now,
	// with hookd idle.
	where := "interleaved with the deliveries (hookd paused)"
	if loops.hookdT == 0 || loops.plainT == 0 {
		where = "after the deliveries (hookd idle)"
		c0 := readCPU(srv.PID)
		for _, turn := range []bool{true, false, true, false} {
			loops.slice(signSlice, turn)
		}
		where += "; " + othersNote(c0, readCPU(srv.PID))
	}
	hookdSign, plainSign := loops.rates()
	// The plain HTTP exchange, with hookd idle: the floor of a delivery's
	// work besides the signature while the listeners share the machine.
	const exchangeInFlight = deliverySubscriptions * 32 // hookd's --max-per-endpoint default
	exchangeCPU, exchangeRate, err := httpExchangeCPU(h.scaled(2*time.Second, 200*time.Millisecond), loops.tokenLen, exchangeInFlight)
	if err != nil {
		return 0, err
	}
	h.rep.add(phase, "pure "+alg+" signing (hookd signer, all CPUs)", hookdSign, "sig/s", nil,
		fmt.Sprintf("delivery.Signer, claims to compact JWS; %.1f s in slices of %v %s", loops.hookdT.Seconds(), signSlice, where))
	h.rep.add(phase, "pure "+alg+" signing ("+loops.plainName+", all CPUs)", plainSign, "sig/s", nil,
		fmt.Sprintf("%s; %.1f s in slices taking turns with the above", loops.plainName, loops.plainT.Seconds()))
	if running <= 0 || delivered <= 0 || hookdSign <= 0 || plainSign <= 0 {
		return 0, errors.New(phase + ": nothing measured")
	}
	rate = float64(delivered) / running.Seconds()
	var minRate *target
	if alg == store.AlgEdDSA && phase == deliveryPhase(alg) { // the target, on the fresh embedded store
		minRate = atLeast(eddsaMinRate, " /s")
	}
	h.rep.add(phase, "deliveries/s to healthy listeners (steady)", rate, "/s", minRate,
		fmt.Sprintf("%d receipts in %d windows totalling %.1f s, from the end of the intake to the 95%% receipt", delivered, windows, running.Seconds()))
	h.rep.add(phase, "deliveries/s including intake and tail", float64(total)/took.Seconds(), "/s", nil,
		fmt.Sprintf("%d deliveries, pauses left out", total))
	// The target is held against the faster loop: the physical limit.
	limit, which := plainSign, loops.plainName+" loop"
	if hookdSign > plainSign {
		limit, which = hookdSign, "hookd signer loop"
	}
	var ofLoop *target
	if alg == store.AlgRS256 && phase == deliveryPhase(alg) {
		ofLoop = atLeast(90, " %") // the RS256 target of the earlier rounds
	}
	h.rep.add(phase, "delivery rate / pure signing rate", 100*rate/limit, "%", ofLoop, "against the faster loop, the "+which)
	h.rep.add(phase, "delivery rate / hookd signer loop rate", 100*rate/hookdSign, "%", nil, "")
	// Where the CPU of the steady windows went, per delivery, against the
	// CPU of one signature in the faster loop: the ratio above is the
	// signature's share of all of it.
	if steadyCPU.ok {
		perDelivery := func(coreSeconds float64) float64 { return 1e6 * coreSeconds / float64(delivered) }
		sigCPU := 1e6 * float64(runtime.NumCPU()) / limit
		h.rep.add(phase, "CPU of one signature in the loop", sigCPU, "µs", nil, "all CPUs ÷ the faster loop's rate")
		h.rep.add(phase, "hookd CPU per delivery (steady)", perDelivery(steadyCPU.Server), "µs", nil,
			fmt.Sprintf("%.0f µs besides the signature: hookd's own work is %.1f %% signing", perDelivery(steadyCPU.Server)-sigCPU, 100*sigCPU/perDelivery(steadyCPU.Server)))
		h.rep.add(phase, "listeners' CPU per delivery (steady)", perDelivery(steadyCPU.Harness), "µs", nil,
			"the harness's process while hookd runs: the 4 listeners' HTTP servers and the receipt count")
		exchange := float64(exchangeCPU.Nanoseconds()) / 1e3
		h.rep.add(phase, exchangeMetric, exchange, "µs", nil,
			fmt.Sprintf("client and server in the harness over loopback, %d in flight, %d-byte bodies, %.0f requests/s, hookd idle", exchangeInFlight, loops.tokenLen, exchangeRate))
		h.rep.add(phase, "ceiling: signature / (signature + plain exchange)", 100*sigCPU/(sigCPU+exchange), "%", nil,
			"the ratio if a delivery were only its signature and a plain HTTP exchange with a listener on this machine: nothing stored, nothing scheduled")
		h.rep.add(phase, "idle, stolen and other CPU per delivery (steady)", perDelivery(steadyCPU.Idle+steadyCPU.Steal+steadyCPU.Other), "µs", nil,
			fmt.Sprintf("idle %.0f, stolen %.0f, other processes %.0f", perDelivery(steadyCPU.Idle), perDelivery(steadyCPU.Steal), perDelivery(steadyCPU.Other)))
	}
	h.rep.addWindow(phase, "", win, nil, "the window includes the pauses; the harness's CPU includes its signing slices")
	return rate, nil
}

// profileDelivery starts a CPU profile of hookd through /debug/pprof/ of
// profileSeconds (scaled), when --profile is set, into
// <profile>/cpu-<alg>.pprof, or cpu-<phase>.pprof for the measurements
// besides the delivery phase's first of alg (profileSlug: RS256's second
// run, the PostgreSQL store's, the full store's and its references). The
// returned function waits for the file.
func (h *harness) profileDelivery(ctx context.Context, srv *server, phase, alg string) func() {
	name := "cpu-" + alg + ".pprof"
	if phase != deliveryPhase(alg) {
		name = "cpu-" + profileSlug(phase) + ".pprof"
	}
	return h.profileCPU(ctx, srv, name)
}

// profileCPU takes, with --profile, a CPU profile of srv from now for
// profileSeconds (scaled) into the profile directory's file name; the
// function it returns waits for it. Without --profile it does nothing.
func (h *harness) profileCPU(ctx context.Context, srv *server, name string) func() {
	if h.cfg.profile == "" {
		return func() {}
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	path := filepath.Join(h.cfg.profile, name)
	go func() {
		defer close(done)
		// net/http/pprof profiles for a fixed time: one that the steady
		// windows outlast.
		secs := int(h.scaled(profileSeconds, time.Second).Seconds())
		if err := srv.fetchProfile(pctx, secs, path); err != nil {
			h.logf("profile %s: %v", name, err)
			return
		}
		h.logf("profile: %d s in %s", secs, path)
	}()
	return func() {
		<-done
		cancel()
	}
}

// profileSlug is phase as a file name's part: "full store's reference,
// fresh before delivery EdDSA" is "fullstores-reference-fresh-before-delivery-EdDSA".
func profileSlug(phase string) string {
	phase = strings.NewReplacer("'", "", ",", "", "full store", "fullstore").Replace(phase)
	return strings.Join(strings.Fields(phase), "-")
}

// profileSeconds is the CPU profile's length at --scale 1: shorter than
// the fastest algorithm's steady windows.
const profileSeconds = 5 * time.Second
