package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	// events are: the janitor deletes them once hookd runs.
	fullStoreExpired = 6 * time.Hour
	// fullStoreFailEvery: one event in this many fails at its attempt
	// (status 500, no retry left); the others succeed at their first.
	fullStoreFailEvery = 20
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
	took             time.Duration
	size             int64 // the file's bytes after the fill
}

// fillStore fills a new store in dir with n events spread over
// fullStoreSubs subscriptions, created from the retention plus
// fullStoreExpired ago until now, each delivered once with an RS256 token
// (RSA signatures are 256 random bytes: the store does not verify them,
// and signing ten million tokens would take hours of CPU).
func (h *harness) fillStore(ctx context.Context, dir string, n int) (f filled, err error) {
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
	h.logf("full store: filling %d events over %d subscriptions, %d transactions pairs, created over %v", steps*per, fullStoreSubs, steps, span.Round(time.Hour))
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
		for k := range per {
			i := step*per + k
			evs = append(evs, store.NewEvent{Type: "entityUpdated", Txn: string(appendUUID(nil, i, 4)),
				Toe: at.Unix(), Payload: appendEventObject(nil, i, "user", 0, -1)})
			ds = append(ds, store.Delivery{SubscriptionID: f.subs[i%fullStoreSubs], Event: k})
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
			claims = store.AppendEventClaims(claims[:0], &e, issuer, endpoints[(step*per+k)%fullStoreSubs])
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
				Endpoint: endpoints[(step*per+k)%fullStoreSubs], JWS: string(tok), StatusCode: http.StatusNoContent,
				Headers: []store.Header{{Name: "Date", Value: sent.Format(http.TimeFormat)}}, Outcome: store.Delivered}
			if (step*per+k)%fullStoreFailEvery == 0 {
				r.StatusCode, r.Outcome, r.Reason, r.Code = http.StatusInternalServerError, store.Failed, "status 500", store.ReasonStatus5xx
				r.Headers = append(r.Headers, store.Header{Name: "Content-Type", Value: "text/plain; charset=utf-8"})
				f.failed++
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
// run measured: deliveries/s with EdDSA, intake in NDJSON batches, the
// event list and the summary; and the file's bytes per stored event.
func (h *harness) runFullStore(ctx context.Context) (err error) {
	const phase = "full store"
	dir := filepath.Join(h.work, "data-full-store")
	n := h.scaledN(fullStoreEvents, 2*fullStoreStep)
	f, err := h.fillStore(ctx, dir, n)
	if err != nil {
		return err
	}
	h.rep.add(phase, "events stored", float64(f.events), "", nil,
		fmt.Sprintf("over %d subscriptions, %d failed (status 500), the rest succeeded at the first attempt; created over the retention plus %v", fullStoreSubs, f.failed, fullStoreExpired))
	h.rep.add(phase, "fill: events recorded/s", float64(f.events)/f.took.Seconds(), "/s", nil,
		fmt.Sprintf("%.0f s through store.AddEvents and store.RecordAttempts in the harness, %d events per transaction", f.took.Seconds(), fullStoreStep))
	h.rep.add(phase, "file bytes per stored event", float64(f.size)/float64(f.events), "B", atMost(bytesPerEventTarget, " B"),
		fmt.Sprintf("%.0f MB file; each event with its RS256 token (stored as its signature, header and issuer in the string table), response headers and history", float64(f.size)/1e6))

	// The start's time on a large store: opening it reads its synced
	// freelist (before, bbolt read every page to rebuild it).
	t0 := time.Now()
	srv, err := startServerWait(ctx, fullStoreReadyWait, h.bin, dir, h.hc, append(slices.Clone(deliveryServerFlags), "--janitor-interval", fullStoreJanitor)...)
	if err != nil {
		return err
	}
	defer h.stopServer(srv, &err)
	h.rep.add(phase, "hookd start to ready", time.Since(t0).Seconds(), "s", nil, "opening the filled store (its freelist synced: bbolt reads it instead of every page)")
	tn, err := srv.login(ctx, f.customer.String(), f.client.String(), f.secret)
	if err != nil {
		return err
	}
	sub := tn.path("/webhooks/subscriptions/" + f.subs[0].String())
	for _, c := range []struct{ metric, path string }{
		{"event list, first page", sub + "/events"},
		{"event list of failures, first page", sub + "/events?state=failure"},
		{"summary", sub + "/summary"},
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
		h.rep.add(phase, c.metric+": median answer", ms(took[len(took)/2]), "ms", nil,
			fmt.Sprintf("max %.1f ms over %d calls; one subscription of %d events", ms(took[len(took)-1]), len(took), f.events/fullStoreSubs))
	}

	rate, err := h.measureDelivery(ctx, srv, phase+" delivery EdDSA", store.AlgEdDSA)
	if err != nil {
		return err
	}
	if fresh := h.freshRates[store.AlgEdDSA]; fresh > 0 {
		h.rep.add(phase, "EdDSA deliveries/s ÷ the fresh store's", 100*rate/fresh, "%", atLeast(fullStoreTarget, " %"),
			fmt.Sprintf("%.0f /s against %.0f /s in the delivery phase", rate, fresh))
	}

	// A disabled subscription of another customer (the full one has the
	// most subscriptions a customer may have), as in the intake phase: its
	// events are stored as failed and nothing delivers them.
	itn, err := srv.newTenant(ctx, uuid.NewString())
	if err != nil {
		return err
	}
	if _, err := srv.createSubscription(ctx, itn, subscriptionSpec{Title: "full store intake", Endpoint: deadEndpoint, Events: []string{"entityUpdated"}}); err != nil {
		return err
	}
	before := len(h.rep.Rows)
	if _, err := h.intakeBatches(ctx, srv, itn, h.scaledN(200_000, batchEvents), phase); err != nil {
		return err
	}
	if fresh := h.freshIntake; fresh > 0 {
		for _, r := range h.rep.Rows[before:] {
			if r.Metric == "NDJSON batches of 1,000: events accepted/s" {
				h.rep.add(phase, "NDJSON intake events/s ÷ the fresh store's", 100*r.Value/fresh, "%", atLeast(fullStoreTarget, " %"),
					fmt.Sprintf("%.0f /s against %.0f /s in the intake phase", r.Value, fresh))
			}
		}
	}
	st, err := os.Stat(filepath.Join(dir, bolt.FileName))
	if err != nil {
		return err
	}
	h.rep.add(phase, "file size at the end ÷ after the fill", 100*float64(st.Size())/float64(f.size), "%", nil,
		"the janitor deleted the events older than the retention meanwhile; freed pages are reused")
	return nil
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
