package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"hookd/recovery"
)

// Shape of the recovery phase.
const (
	recoveryEvents = 100000 // failed events of the recovered subscription (scaled)
	// recoveryMinEvents keeps more than one recovery batch at any scale,
	// so that the recovery always runs as a job, and few enough that a
	// small scale's recovery stays short when hookd slows it down on a
	// busy machine (to a twentieth of --recovery-rate, 25 events/s).
	recoveryMinEvents = 3 * recovery.DefaultBatch
	recoveryLiveRate  = 200 // live events per second, spread over the subscriptions
	recoveryOthers    = 4   // subscriptions besides the recovered one
	recoveryPoll      = 100 * time.Millisecond
	recoveryLiveSeq   = 1 << 40 // benchSeq of the live events sent during the recovery
	recoveryMinLive   = 20      // live events sent during even the shortest recovery
	recoveryMaxWait   = 15 * time.Minute
)

// liveRecord is one live event of the recovery phase.
type liveRecord struct {
	sendRecord
	sub int // 0: the recovered subscription
	seq int64
}

// runRecovery stores failed events in one subscription (disabled while
// they come), then sends live events at a steady rate to it and to
// recoveryOthers other subscriptions, first alone, then while a recovery
// of every failed event runs, and compares the live latency of the two
// (same hookd, same run) and reports how long the recovery took.
func (h *harness) runRecovery(ctx context.Context) (err error) {
	const phase = "recovery"
	srv, err := h.startPhaseServer(ctx, phase)
	if err != nil {
		return err
	}
	defer h.stopServer(srv, &err)
	tn, err := srv.newTenant(ctx, uuid.NewString())
	if err != nil {
		return err
	}
	recovered := &sink{base: h.base, decode: true} // the recovered subscription's listener
	others := &sink{base: h.base, decode: true}
	var ls []*listener
	defer func() { closeListeners(ls) }()
	var subIDs []string
	for i := range recoveryOthers + 1 {
		snk := others
		if i == 0 {
			snk = recovered
		}
		l, err := startListener(snk, answerOK)
		if err != nil {
			return err
		}
		ls = append(ls, l)
		id, err := srv.createSubscription(ctx, tn, subscriptionSpec{
			Title: phase + " " + strconv.Itoa(i), Endpoint: l.URL, Events: []string{"entityUpdated"},
			Enabled: i > 0, Filter: latencyFilter(i),
		})
		if err != nil {
			return err
		}
		subIDs = append(subIDs, id)
	}

	// The failed events: stored while the subscription is disabled.
	n := h.scaledN(recoveryEvents, recoveryMinEvents)
	h.logf("%s: storing %d failed events", phase, n)
	for from := 0; from < n; from += 1000 {
		if _, err := srv.postEvents(ctx, tn.Customer, ndjsonBatch(from, min(1000, n-from), latencyEntity(0)), true); err != nil {
			return err
		}
	}
	sub := tn.path("/webhooks/subscriptions/" + subIDs[0])
	if err := srv.call(ctx, http.MethodPatch, sub, tn.Token, map[string]bool{"enabled": true}, http.StatusOK, nil); err != nil {
		return err
	}
	var sum struct{ Failed int }
	if err := srv.call(ctx, http.MethodGet, sub+"/summary", tn.Token, nil, http.StatusOK, &sum); err != nil {
		return err
	}
	if sum.Failed != n {
		return fmt.Errorf("%s: %d failed events stored, want %d", phase, sum.Failed, n)
	}

	// Live traffic alone.
	dur := h.scaled(20*time.Second, time.Second)
	h.logf("%s: live traffic alone, %d events/s for %v", phase, recoveryLiveRate, dur)
	count := int(dur.Seconds() * recoveryLiveRate)
	alone, err := h.liveTraffic(ctx, srv, tn, 0, func(i int) bool { return i < count })
	if err != nil {
		return err
	}

	// Live traffic while the recovery runs.
	h.logf("%s: recovering %d events with live traffic", phase, n)
	rss := sampleRSS(srv.PID)
	var job struct {
		ID, State         string
		Matched, Requeued int
		Links             map[string]struct{ Href string } `json:"_links"`
	}
	start := time.Now()
	if err := srv.call(ctx, http.MethodPost, sub+"/events/redeliver", tn.Token, nil, http.StatusAccepted, &job); err != nil {
		rss.end()
		return err
	}
	var done atomic.Bool
	var took time.Duration
	var pollErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		for job.State == "running" {
			if time.Since(start) > recoveryMaxWait || ctx.Err() != nil {
				pollErr = fmt.Errorf("%s: the recovery is still running after %v", phase, time.Since(start).Round(time.Second))
				return
			}
			time.Sleep(recoveryPoll)
			if err := srv.call(ctx, http.MethodGet, job.Links["self"].Href, tn.Token, nil, http.StatusOK, &job); err != nil {
				pollErr = err
				return
			}
		}
		took = time.Since(start)
	}()
	during, err := h.liveTraffic(ctx, srv, tn, recoveryLiveSeq, func(i int) bool { return i < recoveryMinLive || !done.Load() })
	wg.Wait()
	if err == nil {
		err = pollErr
	}
	if err != nil {
		rss.end()
		return err
	}
	if job.State != "completed" || job.Requeued != n {
		rss.end()
		return fmt.Errorf("%s: the recovery ended %s with %d of %d requeued", phase, job.State, job.Requeued, n)
	}
	// Every recovered event at its listener (they carry no benchSeq).
	deadline := time.Now().Add(recoveryMaxWait)
	for int(recovered.count.Load()-recovered.unique.Load()-recovered.dups.Load()) < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			rss.end()
			return fmt.Errorf("%s: %d of %d recovered events received", phase, recovered.count.Load()-recovered.unique.Load()-recovered.dups.Load(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	received := time.Since(start)
	win := rss.end()
	// And the last live events.
	live := int64(0)
	for _, recs := range [][]liveRecord{alone, during} {
		for _, r := range recs {
			if r.ok {
				live++
			}
		}
	}
	deadline = time.Now().Add(drainWait)
	for recovered.unique.Load()+others.unique.Load() < live && time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}

	first := map[int64]time.Duration{}
	for _, snk := range []*sink{recovered, others} {
		for _, r := range snk.snapshot() {
			if at, ok := first[r.seq]; r.seq >= 0 && (!ok || r.at < at) {
				first[r.seq] = r.at
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	report := func(label string, recs []liveRecord, same bool) error {
		lat, lost := liveLatencies(recs, first, same)
		if len(lat) == 0 {
			return fmt.Errorf("%s: no live event measured %s", phase, label)
		}
		who := "other subscriptions"
		if same {
			who = "the recovered subscription"
		}
		note := fmt.Sprintf("%d live events", len(lat))
		if lost > 0 {
			note += fmt.Sprintf(", %d not received (counted as %v late)", lost, drainWait)
		}
		h.rep.add(phase, "live p99 intake to listener, "+who+", "+label, ms(percentile(lat, 0.99)), "ms", nil, note)
		return nil
	}
	h.rep.add(phase, "failed events recovered", float64(n), "", nil, "one subscription, every failed event")
	h.rep.add(phase, "seconds to recover (request to completed)", took.Seconds(), "s", nil,
		fmt.Sprintf("polled every %v; all received by the listener after %.1f s", recoveryPoll, received.Seconds()))
	h.rep.add(phase, "events recovered/s", float64(n)/took.Seconds(), "/s", nil, "")
	h.rep.add(phase, "live traffic", recoveryLiveRate, "events/s", nil, fmt.Sprintf("single-event requests over %d subscriptions, the recovered one included", recoveryOthers+1))
	for _, c := range []struct {
		label string
		recs  []liveRecord
		same  bool
	}{{"without recovery", alone, true}, {"during recovery", during, true}, {"without recovery", alone, false}, {"during recovery", during, false}} {
		if err := report(c.label, c.recs, c.same); err != nil {
			return err
		}
	}
	h.rep.addWindow(phase, "", win, nil, "during the recovery")
	return nil
}

// liveTraffic sends single-event intake requests at recoveryLiveRate,
// open loop, event i to subscription i mod (recoveryOthers+1) with
// benchSeq seqBase+i, while more(i), and waits for the answers.
func (h *harness) liveTraffic(ctx context.Context, srv *server, tn tenant, seqBase int64, more func(i int) bool) ([]liveRecord, error) {
	interval := time.Second / recoveryLiveRate
	var mu sync.Mutex
	var recs []liveRecord
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for i := 0; more(i) && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sub := i % (recoveryOthers + 1)
			seq := seqBase + int64(i)
			sent := time.Since(h.base)
			body := appendIntakeLine(make([]byte, 0, 512), int(seq%(1<<30)), latencyEntity(sub), sent, seq)
			_, err := srv.postEvents(ctx, tn.Customer, body, false)
			if err != nil {
				failed.Add(1)
			}
			mu.Lock()
			recs = append(recs, liveRecord{sendRecord: sendRecord{sent: sent, answer: time.Since(h.base) - sent, ok: err == nil}, sub: sub, seq: seq})
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%d live intake requests failed", f)
	}
	return recs, nil
}

// liveLatencies returns the intake-to-listener latencies, sorted, of the
// live events of the recovered subscription (same) or of the others, an
// event not received counting as drainWait, and how many were not.
func liveLatencies(recs []liveRecord, first map[int64]time.Duration, same bool) ([]time.Duration, int) {
	var lat []time.Duration
	lost := 0
	for _, r := range recs {
		if !r.ok || (r.sub == 0) != same {
			continue
		}
		at, ok := first[r.seq]
		if !ok {
			lost++
			lat = append(lat, drainWait)
			continue
		}
		lat = append(lat, at-r.sent)
	}
	slices.Sort(lat)
	return lat, lost
}
