package httpapi

import (
	"bytes"
	"context"
	"errors"
	"mime"
	"net/http"
	"sync"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"hookd/store"
	"hookd/wire"
)

// Intake limits.
const (
	// maxIntakeProblems bounds the invalid-body-params of a refused request.
	maxIntakeProblems = 100
	// maxToe is the largest toe accepted: the end of year 9999.
	maxToe = 253402300799
)

// Media types of the intake.
const (
	mediaJSON   = "application/json"
	mediaNDJSON = "application/x-ndjson"
)

// requiredEventFields are the members every event object carries, as
// non-empty strings.
var requiredEventFields = [...]string{"captureApplicationId", "captureClientId", "entityType", "globalSub", "sub"}

// intakeSubscriptionJSON lists the events recorded for one subscription.
type intakeSubscriptionJSON = wire.IntakeSubscription

// intakeResponse is the intake's 202 answer.
type intakeResponse = wire.IntakeResult

// intakeEvents accepts events from the upstream identity system (SPEC
// section 5): one as application/json or many as application/x-ndjson. A
// request with any bad event is refused whole, naming every problem with its
// line. The answer comes only after the fanned-out events are durable.
func (s *Server) intakeEvents(w http.ResponseWriter, r *http.Request) (err error) {
	defer func() {
		if err != nil {
			s.metrics.intakeRefused.Inc()
		}
	}()
	cid, err := pathUUID(r, "customerId")
	if err != nil {
		return err
	}
	if low, _ := s.diskLow(); low {
		return store.ErrNoSpace // the reserve is kept for deliveries' outcomes
	}
	ndjson := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err == nil && mt == mediaJSON:
		case err == nil && mt == mediaNDJSON:
			ndjson = true
		default:
			return problem(http.StatusUnsupportedMediaType, "unsupported-media-type",
				"send one event as "+mediaJSON+" or many, one per line, as "+mediaNDJSON)
		}
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	if ok, err := s.DB.CustomerExists(cid); err != nil {
		return err
	} else if !ok {
		return errNotFound("no customer " + cid.String())
	}
	release, err := s.intakeMem.reserve(r.ContentLength, s.MaxIntakeBody)
	if err != nil {
		return err
	}
	defer release()
	body, err := readIntakeBody(w, r, s.MaxIntakeBody)
	if err != nil {
		return err
	}
	now := s.DB.Now().Unix()
	p := intakeParser{maxEvent: s.MaxEventSize}
	if ndjson {
		err = p.parseLines(body, now)
	} else {
		err = p.parseOne(body, now)
	}
	if err != nil {
		return err
	}
	if err := p.refusal(); err != nil {
		return err
	}
	events := p.events()

	subs, err := s.intake.get(s.DB, cid)
	if err != nil {
		return err
	}
	deliveries, err := s.fanOut(r.Context(), events, subs)
	if err != nil {
		return err
	}
	resp := intakeAnswer(events, store.IntakeResult{}, subs)
	if len(deliveries) > 0 || key != "" || hasSenderIDs(events) {
		res, err := s.DB.RecordIntake(store.Intake{
			CustomerID: cid, Events: events, Deliveries: deliveries, Key: key, RequestHash: intakeRequestHash(ndjson, body),
			Answer: func(res store.IntakeResult) ([]byte, error) { return marshalJSON(intakeAnswer(events, res, subs)) },
		})
		if errors.Is(err, store.ErrKeyReused) {
			return problem(http.StatusUnprocessableEntity, "idempotency-key-reused", "this Idempotency-Key was used with another request")
		}
		if err != nil {
			return err
		}
		if res.Replay != nil {
			return writeReplay(w, res.Replay)
		}
		resp = intakeAnswer(events, res, subs)
		if s.Hooks.Notify != nil {
			s.Hooks.Notify(dueSubscriptions(res.Added)...)
		}
	}
	s.metrics.intakeAccepted.Add(float64(resp.Accepted))
	s.metrics.intakeRecorded.Add(float64(resp.Recorded))
	return writeJSON(w, http.StatusAccepted, resp)
}

// fanOut pairs every event with every subscription that wants its type and
// whose filter accepts {"<type>": <event>}. Filters come compiled from the
// cache, looked up once per request. It stops when ctx ends (the request's
// time is spent), so that no set of filters holds a request longer.
func (s *Server) fanOut(ctx context.Context, events []store.NewEvent, subs []store.Subscription) ([]store.Delivery, error) {
	type target struct {
		schema  *jsonschema.Schema // nil: no filter
		consts  []constPath        // conditions of schema tested before it (rejects)
		nothing bool               // a filter that no longer compiles matches nothing
	}
	targets := make([]target, len(subs))
	for j := range subs {
		if len(subs[j].Filter) > 0 {
			schema, consts, err := s.filters.get(subs[j].ID, subs[j].Filter)
			targets[j] = target{schema: schema, consts: consts, nothing: err != nil}
		}
	}
	var out []store.Delivery
	for i := range events {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		ev := &events[i]
		var doc, instance any // the event object, and {"<type>": event object}
		parsed := false
		for j := range subs {
			sub := &subs[j]
			if !sub.Wants(ev.Type) || targets[j].nothing {
				continue
			}
			if schema := targets[j].schema; schema != nil {
				if !parsed {
					parsed = true
					var err error
					if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(ev.Payload)); err != nil {
						doc = nil
					}
					instance = map[string]any{ev.Type: doc}
				}
				if doc == nil || rejects(targets[j].consts, instance) || schema.Validate(instance) != nil {
					continue
				}
			}
			out = append(out, store.Delivery{SubscriptionID: sub.ID, Event: i})
		}
	}
	return out, nil
}

// groupAdded lists the recorded event ids per subscription, in the order
// of the customer's subscriptions.
func groupAdded(added []store.Added, subs []store.Subscription) []intakeSubscriptionJSON {
	bySub := map[uuid.UUID][]uuid.UUID{}
	for _, a := range added {
		bySub[a.SubscriptionID] = append(bySub[a.SubscriptionID], a.ID)
	}
	out := make([]intakeSubscriptionJSON, 0, len(bySub))
	for _, sub := range subs {
		if ids, ok := bySub[sub.ID]; ok {
			out = append(out, intakeSubscriptionJSON{SubscriptionID: sub.ID, EventIDs: ids})
		}
	}
	return out
}

// dueSubscriptions returns the subscriptions that got events to deliver.
func dueSubscriptions(added []store.Added) []uuid.UUID {
	var out []uuid.UUID
	for _, a := range added {
		if a.State == store.AwaitingExecuting && !containsUUID(out, a.SubscriptionID) {
			out = append(out, a.SubscriptionID)
		}
	}
	return out
}

func containsUUID(list []uuid.UUID, id uuid.UUID) bool {
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}

// subsCache keeps each customer's subscriptions as of the store's
// SubscriptionsVersion, so that the intake reads them once per change.
type subsCache struct {
	mu      sync.Mutex
	version uint64
	m       map[uuid.UUID][]store.Subscription
}

// get returns the customer's subscriptions; callers must not change them.
func (c *subsCache) get(db store.Store, cid uuid.UUID) ([]store.Subscription, error) {
	v := db.SubscriptionsVersion()
	c.mu.Lock()
	if c.m == nil || c.version != v {
		c.m = map[uuid.UUID][]store.Subscription{}
		c.version = v
	}
	subs, ok := c.m[cid]
	c.mu.Unlock()
	if ok {
		return subs, nil
	}
	subs, err := db.Subscriptions(cid)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.version == v {
		c.m[cid] = subs
	}
	c.mu.Unlock()
	return subs, nil
}
