package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"hookd/store"
)

// EventTypes are the event types a subscription may name.
var EventTypes = []string{"entityCreated", "entityDeleted", "entityUpdated"}

func knownEventType(t string) bool {
	for _, e := range EventTypes {
		if e == t {
			return true
		}
	}
	return false
}

// subscriptionPageSize is the number of subscriptions per page.
const subscriptionPageSize = 25

// subscriptionJSON is the wire form of a subscription (SPEC section 4).
type subscriptionJSON struct {
	ID         uuid.UUID       `json:"id"`
	CustomerID uuid.UUID       `json:"customerId"`
	Title      string          `json:"title"`
	Endpoint   string          `json:"endpoint"`
	Events     []string        `json:"events"`
	Enabled    bool            `json:"enabled"`
	Filter     json.RawMessage `json:"filter,omitempty"`
	CreatedAt  string          `json:"createdAt"`
	UpdatedAt  string          `json:"updatedAt"`
	// DisabledAt and DisabledReason are set while the subscription is
	// disabled; the reason only when hookd disabled it.
	DisabledAt     string          `json:"disabledAt,omitempty"`
	DisabledReason string          `json:"disabledReason,omitempty"`
	Signing        signingJSON     `json:"signing"`
	Links          map[string]link `json:"_links"`
}

// signingJSON is how a subscription's tokens are signed.
type signingJSON struct {
	Alg string `json:"alg"`
}

func subscriptionPath(cid, sid uuid.UUID) string {
	return "/" + cid.String() + "/webhooks/subscriptions/" + sid.String()
}

func timeJSON(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func toSubscriptionJSON(s store.Subscription) subscriptionJSON {
	self := subscriptionPath(s.CustomerID, s.ID)
	events := s.Events
	if events == nil {
		events = []string{}
	}
	out := subscriptionJSON{
		ID: s.ID, CustomerID: s.CustomerID, Title: s.Title, Endpoint: s.Endpoint,
		Events: events, Enabled: s.Enabled, Filter: s.Filter,
		CreatedAt: timeJSON(s.CreatedAt), UpdatedAt: timeJSON(s.UpdatedAt),
		Signing: signingJSON{Alg: s.Alg()},
		Links:   map[string]link{"self": {Href: self}, "events": {Href: self + "/events"}},
	}
	if !s.Enabled {
		out.DisabledReason = s.DisabledReason
		if !s.DisabledAt.IsZero() {
			out.DisabledAt = timeJSON(s.DisabledAt)
		}
	}
	return out
}

// readOnlyFields may appear in a resource the client echoes back but cannot be set.
var readOnlyFields = map[string]bool{"id": true, "customerId": true, "createdAt": true, "updatedAt": true, "_links": true,
	"disabledAt": true, "disabledReason": true}

// applySubscription applies the members of body to s, validating each, and
// returns every problem found and the compiled filter when body sets one.
// With create, title, endpoint and events are required.
func (s *Server) applySubscription(r *http.Request, body map[string]json.RawMessage, sub *store.Subscription, create bool) (bad []ParamError, filter *jsonschema.Schema) {
	add := func(name, reason string) {
		for _, b := range bad {
			if b.Name == name && b.Reason == reason {
				return
			}
		}
		bad = append(bad, ParamError{Name: name, Reason: reason})
	}
	isNull := func(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }
	for k := range body {
		switch k {
		case "title", "endpoint", "events", "enabled", "filter", "signing":
		default:
			if readOnlyFields[k] {
				add(k, "is read-only")
			} else {
				add(k, "is not a subscription field")
			}
		}
	}
	if v, ok := body["title"]; ok {
		var t string
		if json.Unmarshal(v, &t) != nil {
			add("title", "must be a string")
		} else if n := utf8.RuneCountInString(t); n < 2 || n > 200 || len(bytes.TrimSpace([]byte(t))) == 0 {
			add("title", "must be 2 to 200 characters")
		} else {
			sub.Title = t
		}
	} else if create {
		add("title", "is required")
	}
	if v, ok := body["events"]; ok {
		var evs []string
		if isNull(v) || json.Unmarshal(v, &evs) != nil {
			add("events", "must be a list of event types")
		} else {
			seen := map[string]bool{}
			clean := []string{}
			for _, e := range evs {
				switch {
				case !knownEventType(e):
					add("events", "unknown event type "+quote(e)+"; allowed: "+join(EventTypes))
				case seen[e]:
					add("events", "lists "+quote(e)+" more than once")
				default:
					seen[e] = true
					clean = append(clean, e)
				}
			}
			sub.Events = clean
		}
	} else if create {
		add("events", "is required")
	}
	if v, ok := body["enabled"]; ok {
		var b bool
		if isNull(v) || json.Unmarshal(v, &b) != nil {
			add("enabled", "must be true or false")
		} else {
			sub.Enabled = b
		}
	}
	if v, ok := body["filter"]; ok {
		if isNull(v) {
			sub.Filter = nil
		} else if compiled, err := s.filters.compile(v); err != nil {
			add("filter", err.Error())
		} else {
			filter = compiled
			var compact bytes.Buffer
			_ = json.Compact(&compact, v)
			sub.Filter = compact.Bytes()
		}
	}
	if v, ok := body["signing"]; ok {
		if alg, name, reason := parseSigning(v); reason != "" {
			add(name, reason)
		} else {
			sub.SigningAlg = alg
		}
	}
	if v, ok := body["endpoint"]; ok {
		var e string
		if json.Unmarshal(v, &e) != nil {
			add("endpoint", "must be a string")
		} else if err := s.checkEndpoint(r.Context(), e); err != nil {
			add("endpoint", err.Error())
		} else {
			sub.Endpoint = e
		}
	} else if create {
		add("endpoint", "is required")
	}
	return bad, filter
}

// parseSigning reads a subscription's "signing" member,
// {"alg":"RS256"|"ES256"|"EdDSA"}, and returns the algorithm, or the name
// of the bad member and why.
func parseSigning(v json.RawMessage) (alg, name, reason string) {
	var m map[string]json.RawMessage
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) || json.Unmarshal(v, &m) != nil {
		return "", "signing", `must be an object {"alg":…}`
	}
	for k := range m {
		if k != "alg" {
			return "", "signing." + k, "is not a member of signing; it has only alg"
		}
	}
	raw, ok := m["alg"]
	if !ok {
		return "", "signing.alg", "is required"
	}
	if json.Unmarshal(raw, &alg) != nil || !slices.Contains(store.SigningAlgs, alg) {
		return "", "signing.alg", "must be one of " + join(store.SigningAlgs)
	}
	return alg, "", ""
}

// checkEndpoint validates a listener URL within half the API timeout, so
// that a slow resolver still leaves time to answer within the timeout.
func (s *Server) checkEndpoint(ctx context.Context, raw string) error {
	cctx, cancel := context.WithTimeout(ctx, s.APITimeout/2)
	defer cancel()
	err := s.Hooks.CheckEndpoint(cctx, raw)
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		return errors.New("host could not be resolved in time")
	}
	return err
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	body, err := decodeObject(w, r, s.MaxBody, "application/json")
	if err != nil {
		return err
	}
	// Full precision: the list orders subscriptions by creation time, and
	// several may be created within one second.
	now := s.DB.Now().UTC()
	sub := store.Subscription{ID: uuid.New(), CustomerID: cid, Enabled: true, CreatedAt: now, UpdatedAt: now}
	bad, filter := s.applySubscription(r, body, &sub, true)
	if len(bad) > 0 {
		return errInvalidParams(bad)
	}
	err = s.DB.CreateSubscription(sub, s.SubscriptionLimit)
	if errors.Is(err, store.ErrLimit) {
		return problem(http.StatusConflict, "limit-reached", "this customer already has the maximum number of subscriptions")
	}
	if err != nil {
		return err
	}
	if filter != nil {
		s.filters.put(sub.ID, sub.Filter, filter)
	}
	w.Header().Set("Location", subscriptionPath(cid, sub.ID))
	return writeJSON(w, http.StatusCreated, toSubscriptionJSON(sub))
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	page, err := pageQuery(r)
	if err != nil {
		return err
	}
	subs, err := s.DB.Subscriptions(cid)
	if err != nil {
		return err
	}
	from, to, served, last := paginate(len(subs), subscriptionPageSize, page)
	items := make([]subscriptionJSON, 0, to-from)
	for _, sub := range subs[from:to] {
		items = append(items, toSubscriptionJSON(sub))
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"total":     len(subs),
		"_links":    pageLinks("/"+cid.String()+"/webhooks/subscriptions", served, last),
		"_embedded": map[string]any{"subscriptions": items},
	})
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	sub, err := s.DB.Subscription(cid, sid)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toSubscriptionJSON(sub))
}

func (s *Server) patchSubscription(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	cur, err := s.DB.Subscription(cid, sid)
	if err != nil {
		return err
	}
	body, err := decodeObject(w, r, s.MaxBody, "application/merge-patch+json", "application/json")
	if err != nil {
		return err
	}
	// Validation (DNS included) runs before the store transaction; the
	// transaction then takes only the members the patch names.
	patched := cur
	bad, filter := s.applySubscription(r, body, &patched, false)
	if len(bad) > 0 {
		return errInvalidParams(bad)
	}
	if !cur.Enabled && patched.Enabled {
		// Events that waited when the subscription was disabled are failed
		// before it is enabled again, so that only new events are sent.
		done, err := s.failWaiting(r, sid)
		if err != nil {
			return err
		}
		if !done {
			return problem(http.StatusServiceUnavailable, "still-disabling",
				"the subscription's waiting events are still being marked failure; retry the request")
		}
	}
	_, after, err := s.DB.UpdateSubscription(cid, sid, func(sub *store.Subscription) error {
		for k := range body {
			switch k {
			case "title":
				sub.Title = patched.Title
			case "endpoint":
				sub.Endpoint = patched.Endpoint
			case "events":
				sub.Events = patched.Events
			case "enabled":
				sub.Enabled = patched.Enabled
			case "filter":
				sub.Filter = patched.Filter
			case "signing":
				sub.SigningAlg = patched.SigningAlg
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, ok := body["filter"]; ok {
		if filter != nil {
			s.filters.put(after.ID, after.Filter, filter)
		} else {
			s.filters.forget(after.ID)
		}
	}
	if !after.Enabled {
		if _, err := s.failWaiting(r, after.ID); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, toSubscriptionJSON(after))
}

// failWaiting marks the waiting events of a disabled subscription as
// failure, in bounded transactions, until none is left (done) or the
// request's time is nearly spent; the dispatcher's lane finishes any rest.
func (s *Server) failWaiting(r *http.Request, sid uuid.UUID) (done bool, err error) {
	deadline, _ := r.Context().Deadline()
	for {
		n, err := s.DB.FailWaiting(sid, store.FailWaitingBatch)
		if err != nil || n < store.FailWaitingBatch {
			return err == nil, err
		}
		if !deadline.IsZero() && time.Until(deadline) < s.APITimeout/3 {
			return false, nil
		}
	}
}

func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	if err := s.DB.DeleteSubscription(cid, sid); err != nil {
		return err
	}
	s.filters.forget(sid)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
