package delivery

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"hookd/secevent"
	"hookd/store"
)

// Bounds of the response headers kept with an event.
const (
	maxKeptHeaders     = 32
	maxKeptHeaderValue = 512
)

// reasonSigning is the reason of an attempt that could not be signed.
const reasonSigning = "signing failed"

// workerIdle is how long an attempt worker waits for work before it exits.
const workerIdle = 10 * time.Second

// attemptJob is one attempt for a worker.
type attemptJob struct {
	lane  *lane
	sub   store.Subscription
	event store.Event
}

// startAttempt hands j to an idle worker, or starts one. Workers outlive
// their attempts (a goroutine per attempt would grow a fresh stack each
// time) and exit after workerIdle without work, or at Close. There are
// never more busy workers than attempts in flight.
func (d *Dispatcher) startAttempt(j attemptJob) {
	select {
	case d.work <- j:
	default:
		d.workersWG.Add(1)
		d.workersStarted.Add(1)
		go d.worker(j)
	}
}

func (d *Dispatcher) worker(j attemptJob) {
	defer d.workersWG.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		d.attempt(j)
		idle.Reset(workerIdle)
		select {
		case j = <-d.work:
		case <-idle.C:
			return
		case <-d.drained:
			return
		}
	}
}

// attempt makes one attempt of j's event and hands its outcome to the
// recorder. It runs on a worker, holding a slot of sending until the
// exchange ended and one of sem until the outcome is stored; the event
// stays in flight until then, so its lane never picks it twice.
func (d *Dispatcher) attempt(j attemptJob) {
	l, e := j.lane, j.event
	d.m.inFlight.Inc()
	start := time.Now()
	r, ok := d.deliver(j.sub, &e)
	d.m.inFlight.Dec()
	if !ok {
		<-d.sending
		l.sent()
		d.release(l, e.Seq, true) // cut by the shutdown: attempted again at the next start
		return
	}
	d.m.observe(&r, time.Since(start))
	// The subscription is disabled before the exchange's slot is free, so
	// that its lane starts nothing more to a gone endpoint.
	d.disableGone(j.sub, &r)
	<-d.sending
	l.sent()
	d.results <- outcome{lane: l, result: r}
}

// disableGone disables the subscription of a failed attempt when its
// endpoint is gone: it answered 410, or every attempt has failed for
// AutoDisableAfter. It runs before the attempt's outcome is stored, which
// then finds the subscription disabled; the lane fails the waiting events.
func (d *Dispatcher) disableGone(sub store.Subscription, r *store.AttemptResult) {
	var reason string
	var since, failingBefore time.Time
	switch {
	case r.Outcome == store.Delivered || r.Code == store.ReasonInternal:
		return
	case r.Code == store.ReasonEndpointGone:
		reason = store.DisabledEndpointGone
	case d.o.AutoDisableAfter > 0:
		// The run of failures is read before this attempt's outcome is
		// stored: it counts from an earlier failed attempt.
		var err error
		since, err = d.o.DB.FailingSince(sub.ID)
		failingBefore = r.StartedAt.Add(-d.o.AutoDisableAfter)
		if err != nil || since.IsZero() || since.After(failingBefore) {
			return
		}
		reason = store.DisabledEndpointFailing
	default:
		return
	}
	s, done, err := d.o.DB.DisableSubscription(sub.ID, reason, failingBefore)
	if err != nil {
		d.o.Log.Error().Err(err).Str("subscriptionId", sub.ID.String()).Msg("disable subscription")
		return
	}
	if !done {
		return
	}
	d.m.disabled.WithLabelValues(reason).Inc()
	ev := d.o.Log.Warn().Str("customerId", s.CustomerID.String()).Str("subscriptionId", s.ID.String()).
		Str("endpoint", r.Endpoint).Str("reason", reason)
	if reason == store.DisabledEndpointFailing {
		ev = ev.Time("failingSince", since)
	}
	ev.Msg("subscription disabled: its endpoint is gone; its waiting events fail")
}

// release frees the slot of an attempt whose outcome is stored (or was
// cut) and lets its lane pick the event again if it is due again.
func (d *Dispatcher) release(l *lane, seq uint64, due bool) {
	<-d.sem
	l.done(seq, due)
}

// outcome is an attempt's result waiting to be stored.
type outcome struct {
	lane   *lane
	result store.AttemptResult
}

// maxRecordBatch bounds the outcomes stored by one transaction, and
// recordLinger is how long the recorder waits for more after the first.
// The listener has the notification by then: the wait delays only the
// event's stored state (the lane meanwhile sends other events, up to
// unstoredFactor times MaxPerEndpoint awaiting their commit). A commit's pages
// (about 17 of 16 KB for 64 outcomes of 4 subscriptions, with two
// fsyncs) grow much more slowly than its outcomes, so a longer wait makes
// each delivery's share of the commit smaller: 5 ms instead of 2 ms stores
// about 100 outcomes per commit instead of 60 at the bench's rate.
const (
	maxRecordBatch = 256
	recordLinger   = 5 * time.Millisecond
)

// After a failed write (a full disk, say) the recorder keeps the outcomes
// and writes them again after a wait that starts at recordRetryMin and
// doubles up to recordRetryMax.
const (
	recordRetryMin = 100 * time.Millisecond
	recordRetryMax = 5 * time.Second
)

// recordLoop stores the outcomes of attempts: those that arrive within
// recordLinger of the first, or while the previous write committed, go
// into one write, so that the store's commit and fsync are shared by many
// attempts. It returns when Close closes drained.
//
// An outcome the store refuses is kept and written again with a capped
// exponential backoff, together with the outcomes that arrive meanwhile;
// its event stays in flight (its lane does not pick it, so it is not sent
// again) and lanes start no new attempt until the store takes writes
// again. Only when the shutdown cuts the attempts (the grace period ended)
// are the outcomes still held dropped: their events stay due in the store
// and are attempted again at the next start.
func (d *Dispatcher) recordLoop() {
	defer d.recorderWG.Done()
	batch := make([]outcome, 0, maxRecordBatch)
	results := make([]store.AttemptResult, 0, maxRecordBatch)
	var backoff time.Duration // zero while the store takes writes
	var heldSince time.Time
	for {
		if backoff == 0 {
			select {
			case o := <-d.results:
				batch = append(batch, o)
			case <-d.drained:
				return
			}
			// Collect for up to recordLinger: one commit (two fsyncs) then
			// serves the attempts of those milliseconds.
			batch = d.gather(batch, recordLinger, maxRecordBatch)
		} else {
			batch = d.gather(batch, backoff, 0)
		}
		results = results[:0]
		for _, o := range batch {
			results = append(results, o.result)
		}
		err := d.o.DB.RecordAttempts(results)
		if err != nil {
			d.m.heldErrors.Inc()
		}
		switch {
		case err == nil:
			d.m.perCommit.Observe(float64(len(results)))
			if backoff > 0 {
				d.o.Log.Info().Int("outcomes", len(batch)).Dur("held", time.Since(heldSince)).Msg("stored the attempt outcomes held since the store refused them")
			}
		case d.attemptCtx.Err() != nil:
			d.o.Log.Warn().Err(err).Int("outcomes", len(batch)).Msg("attempt outcomes not stored at shutdown; their events are attempted again at the next start")
		default:
			if backoff == 0 {
				d.o.Log.Error().Err(err).Int("outcomes", len(batch)).Msg("record attempts; the outcomes are held and written again, and no new attempt starts meanwhile")
				heldSince = time.Now()
				d.recordFailing.Store(true)
			}
			backoff = min(max(2*backoff, recordRetryMin), recordRetryMax)
			d.m.held.Set(float64(len(batch)))
			continue
		}
		backoff = 0
		d.recordFailing.Store(false)
		d.m.held.Set(0)
		for _, o := range batch {
			d.release(o.lane, o.result.Seq, o.result.Outcome == store.Retry)
		}
		batch = batch[:0]
	}
}

// gather adds to batch the outcomes that arrive within wait, up to limit
// outcomes in all (no limit when zero). A wait of the backoff ends early
// when the shutdown cuts the attempts. The linger (limit not zero) also
// ends as soon as batch holds the outcome of every attempt that holds a
// slot of sem: nothing else is under way that could join it.
func (d *Dispatcher) gather(batch []outcome, wait time.Duration, limit int) []outcome {
	var cut <-chan struct{} // nil during the linger: it is short
	if limit == 0 {
		cut = d.attemptCtx.Done()
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for limit == 0 || len(batch) < limit {
		if limit > 0 && len(batch) >= len(d.sem) {
			return batch
		}
		select {
		case o := <-d.results:
			batch = append(batch, o)
		case <-t.C:
			return batch
		case <-cut:
			return batch
		}
	}
	return batch
}

// deliver posts e's token to the subscription's endpoint as it is now and
// maps the result. The stored token is resent while its audience is that
// endpoint; otherwise (first attempt, or the endpoint changed) the event is
// signed for it, with the same jti, iat, txn, toe and events. ok is false
// when the shutdown cut the attempt.
func (d *Dispatcher) deliver(sub store.Subscription, e *store.Event) (r store.AttemptResult, ok bool) {
	r = store.AttemptResult{SubscriptionID: e.SubscriptionID, Seq: e.Seq, StartedAt: d.o.DB.Now()}
	endpoint := sub.Endpoint
	jws := e.JWS
	// A token of another algorithm (the subscription's was changed) is
	// signed again too.
	if jws == "" || e.Endpoint != endpoint || !SignedWith(jws, sub.Alg()) {
		var err error
		if jws, err = d.sign(sub.CustomerID, sub.Alg(), e, endpoint); err != nil {
			d.o.Log.Error().Err(err).Str("customerId", sub.CustomerID.String()).Msg("sign token")
			r.Outcome, r.Reason, r.Code = store.Retry, reasonSigning, store.ReasonInternal
			r.RetryAt = d.retryAt(e, 0)
			return r, true
		}
	}
	res := d.o.Client.Attempt(d.attemptCtx, endpoint, jws)
	if res.StatusCode == 0 && d.attemptCtx.Err() != nil {
		return r, false
	}
	r.Endpoint = endpoint
	r.JWS = jws
	r.StatusCode = res.StatusCode
	r.Headers = keptHeaders(res.Header)
	r.Body = res.Body
	r.Duration = res.Duration
	r.Reason, r.Code = res.Reason, res.Code
	switch res.Outcome {
	case Success:
		r.Outcome = store.Delivered
	case Fail:
		r.Outcome = store.Failed
	default:
		r.Outcome = store.Retry
		r.RetryAt = d.retryAt(e, res.RetryAfter)
	}
	return r, true
}

// retryAt is when e is tried next after the attempt being made, zero when
// its schedule is spent.
func (d *Dispatcher) retryAt(e *store.Event, retryAfter time.Duration) time.Time {
	made := e.Attempts + 1 - e.RoundStart
	var wait time.Duration
	var ok bool
	if d.o.Rand != nil {
		d.randMu.Lock()
		wait, ok = d.o.Schedule.Next(made, retryAfter, d.o.Rand)
		d.randMu.Unlock()
	} else {
		wait, ok = d.o.Schedule.Next(made, retryAfter, nil)
	}
	if !ok {
		return time.Time{}
	}
	return d.o.DB.Now().Add(wait)
}

// sign returns the token of e for endpoint, signed with the customer's
// current key of alg. Its claims are store.AppendEventClaims's, the same
// whenever they are made for that endpoint (an export line's too), and
// those the store rebuilds the token from.
func (d *Dispatcher) sign(customer uuid.UUID, alg string, e *store.Event, endpoint string) (string, error) {
	k, err := d.signer(customer, alg)
	if err != nil {
		return "", err
	}
	bp := d.claim.Get().(*[]byte)
	defer d.claim.Put(bp)
	*bp = store.AppendEventClaims((*bp)[:0], e, k.issuer, endpoint)
	return k.signer.Sign(*bp)
}

// Test sends a test notification to sub's endpoint at once: a token signed
// with the customer's current key of the subscription's algorithm whose events are {"test":{"id":<uuid>}}
// (the id is also the jti), without txn. It reports the status code (0
// when there was no response) and whether the attempt succeeded; err is
// set only when the token could not be made. The attempt is bounded by ctx
// and the client's timeout; nothing is stored.
func (d *Dispatcher) Test(ctx context.Context, sub store.Subscription) (statusCode int, success bool, err error) {
	k, err := d.signer(sub.CustomerID, sub.Alg())
	if err != nil {
		return 0, false, err
	}
	id := uuid.NewString()
	now := d.o.DB.Now().Unix()
	claims := secevent.AppendClaims(nil, secevent.Claims{
		Issuer: k.issuer, IssuedAt: now, ID: id, Audience: []string{sub.Endpoint},
		TimeOfEvent: now, EventType: "test", Event: []byte(`{"id":"` + id + `"}`),
	})
	jws, err := k.signer.Sign(claims)
	if err != nil {
		return 0, false, err
	}
	res := d.o.Client.Attempt(ctx, sub.Endpoint, jws)
	return res.StatusCode, res.Outcome == Success, nil
}

// keyCache keeps each customer's current signer of each algorithm for
// KeyRefresh.
type keyCache struct {
	mu  sync.Mutex
	m   map[keyOf]*keyEntry
	gen uint64 // bumped by ForgetKeys: an entry read before is not kept
}

// keyOf names a customer's key of one algorithm.
type keyOf struct {
	customer uuid.UUID
	alg      string
}

type keyEntry struct {
	checked time.Time
	signer  *Signer
	issuer  string
	// reading is set by the attempt that reads the keys again once
	// KeyRefresh has passed; the others sign with this entry meanwhile.
	reading atomic.Bool
}

// signer returns the customer's current signer of alg, asking the store at
// most once per KeyRefresh; a rotation's new key has been published as
// "next" before it signs, so a verifier knows it either way. One attempt
// asks while the others go on with the entry it replaces, so that the
// attempts under way when KeyRefresh passes do not all ask at once. A
// customer created before hookd signed with alg gets its keys of alg here.
func (d *Dispatcher) signer(customer uuid.UUID, alg string) (*keyEntry, error) {
	now := d.o.DB.Now()
	at := keyOf{customer, alg}
	d.keys.mu.Lock()
	e, gen := d.keys.m[at], d.keys.gen
	d.keys.mu.Unlock()
	if e != nil && (now.Sub(e.checked) < d.o.KeyRefresh || !e.reading.CompareAndSwap(false, true)) {
		return e, nil
	}
	next, err := d.readSigner(customer, alg, e, now)
	if err != nil {
		if e != nil {
			e.reading.Store(false) // the next attempt asks again
		}
		return nil, err
	}
	d.keys.mu.Lock()
	if d.keys.gen == gen { // else the keys changed during the read: read them again next time
		d.keys.m[at] = next
	}
	d.keys.mu.Unlock()
	return next, nil
}

// readSigner reads the customer's keys of alg and returns the entry of
// its current one, checked at now; e's signer is kept when it is that key.
func (d *Dispatcher) readSigner(customer uuid.UUID, alg string, e *keyEntry, now time.Time) (*keyEntry, error) {
	ks, err := d.o.DB.KeySet(customer)
	if err != nil {
		return nil, err
	}
	t, ok := ks.Triple(alg)
	if !ok {
		missing, err := MissingKeyTriples(ks)
		if err != nil {
			return nil, err
		}
		if ks, err = d.o.DB.AddKeyTriples(customer, missing); err != nil {
			return nil, err
		}
		if t, ok = ks.Triple(alg); !ok {
			return nil, fmt.Errorf("no %s keys", alg)
		}
	}
	if e == nil || e.signer.KeyID() != t.Current.ID {
		s, err := NewStoredSigner(t.Current)
		if err != nil {
			return nil, err
		}
		e = &keyEntry{signer: s, issuer: d.o.PublicURL + "/" + customer.String() + "/webhooks"}
	}
	return &keyEntry{checked: now, signer: e.signer, issuer: e.issuer}, nil
}

// ForgetKeys drops the customer's cached signers, so that the next
// attempt reads the customer's keys again: a rotation made through this
// process signs with the new key at once (other processes sharing the
// store take it within KeyRefresh).
func (d *Dispatcher) ForgetKeys(customer uuid.UUID) {
	d.keys.mu.Lock()
	defer d.keys.mu.Unlock()
	d.keys.gen++
	for k := range d.keys.m {
		if k.customer == customer {
			delete(d.keys.m, k)
		}
	}
}

// keptHeaders returns the response headers to store: at most
// maxKeptHeaders, sorted by name, each value cut to maxKeptHeaderValue.
func keptHeaders(h http.Header) []store.Header {
	if len(h) == 0 {
		return nil
	}
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]store.Header, 0, min(len(names), maxKeptHeaders))
	for _, name := range names {
		for _, v := range h[name] {
			if len(out) == maxKeptHeaders {
				return out
			}
			if len(v) > maxKeptHeaderValue {
				v = v[:maxKeptHeaderValue]
			}
			out = append(out, store.Header{Name: name, Value: v})
		}
	}
	return out
}
