package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"hookd/store"
)

// eventPageSize is the number of events per page of a list.
const eventPageSize = 100

// maxSearchLength bounds the txn and sub a list searches for.
const maxSearchLength = 1024

// uuidPattern restricts a route variable to UUIDs, so that fixed path
// segments such as /events/exports never reach the event routes.
const uuidPattern = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

// eventJSON is the wire form of an event (SPEC section 7).
type eventJSON struct {
	ID         uuid.UUID          `json:"id"`
	Type       string             `json:"type"`
	CreatedAt  string             `json:"createdAt"`
	UpdatedAt  string             `json:"updatedAt"`
	State      string             `json:"state"`
	Attempts   int                `json:"attempts"`
	Request    eventRequestJSON   `json:"request"`
	Response   *eventResponseJSON `json:"response,omitempty"`
	ExportedAt string             `json:"exportedAt,omitempty"`
	ReasonCode string             `json:"reasonCode,omitempty"` // the latest failed attempt's or the failure's
	Links      map[string]link    `json:"_links"`
}

type eventRequestJSON struct {
	Endpoint string            `json:"endpoint"`
	Headers  map[string]string `json:"headers"`
	Payload  string            `json:"payload,omitempty"` // the token as sent
}

type eventResponseJSON struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
}

// historyJSON is one state change of an event.
type historyJSON struct {
	At         string `json:"at"`
	State      string `json:"state"`
	Attempt    int    `json:"attempt"`
	StatusCode int    `json:"statusCode,omitempty"`
	Reason     string `json:"reason,omitempty"`
	ReasonCode string `json:"reasonCode,omitempty"`
	Endpoint   string `json:"endpoint,omitempty"` // the executing row of an attempt: where it went
}

// eventTime formats event times with their sub-second part, so that a
// createdAt can be passed back as after= without skipping or repeating.
func eventTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func eventPath(cid, sid, id uuid.UUID) string {
	return subscriptionPath(cid, sid) + "/events/" + id.String()
}

// eventState is the state an event is shown in: an event with an attempt
// in flight is executing (a disable may have marked it failure already; the
// attempt's outcome decides).
func (s *Server) eventState(e *store.Event) store.State {
	if e.State != store.Success && s.Hooks.InFlight != nil && s.Hooks.InFlight(e.SubscriptionID, e.Seq) {
		return store.Executing
	}
	return e.State
}

func (s *Server) toEventJSON(cid uuid.UUID, e *store.Event) eventJSON {
	self := eventPath(cid, e.SubscriptionID, e.ID)
	out := eventJSON{
		ID: e.ID, Type: e.Type, CreatedAt: eventTime(e.CreatedAt), UpdatedAt: eventTime(e.UpdatedAt),
		State: s.eventState(e).String(), Attempts: e.Attempts, ReasonCode: e.Reason.String(),
		Request: eventRequestJSON{Endpoint: e.Endpoint, Payload: e.JWS, Headers: s.requestHeaders()},
		Links:   map[string]link{"self": {Href: self}, "redeliver": {Href: self + "/redeliver"}, "history": {Href: self + "/history"}, "attempts": {Href: self + "/attempts"}},
	}
	if e.Response != nil {
		out.Response = &eventResponseJSON{StatusCode: e.Response.StatusCode, Headers: headerMap(e.Response.Headers)}
	}
	if !e.ExportedAt.IsZero() {
		out.ExportedAt = eventTime(e.ExportedAt)
	}
	return out
}

// reasonNames lists the reason codes for an error message.
func reasonNames() string {
	var names []string
	for _, c := range store.ReasonCodes() {
		names = append(names, c.String())
	}
	return join(names)
}

// eventQuery reads the state, type, reason, after, before, order and page
// parameters of a list of subscription sid's events.
func (s *Server) eventQuery(r *http.Request, sid uuid.UUID) (store.EventQuery, int, error) {
	var q store.EventQuery
	v := r.URL.Query()
	inFlight := func(seq uint64) bool { return s.Hooks.InFlight != nil && s.Hooks.InFlight(sid, seq) }
	if name := v.Get("state"); name != "" {
		st, ok := store.ParseState(name)
		if !ok {
			return q, 0, errBadRequest("invalid-query", "state must be one of awaiting-executing, executing, awaiting-retry, success, failure")
		}
		q.State = st
		switch st {
		case store.Executing:
			q.State = 0
			q.Filter = func(seq uint64, st store.State) bool { return st != store.Success && inFlight(seq) }
		case store.AwaitingExecuting, store.AwaitingRetry, store.Failure:
			q.Filter = func(seq uint64, _ store.State) bool { return !inFlight(seq) }
		}
	}
	if typ := v.Get("type"); typ != "" {
		if !slices.Contains(EventTypes, typ) {
			return q, 0, errBadRequest("invalid-query", "type must be one of "+strings.Join(EventTypes, ", "))
		}
		q.Type = typ
	}
	switch v.Get("order") {
	case "", "asc":
	case "desc":
		q.Desc = true
	default:
		return q, 0, errBadRequest("invalid-query", "order must be asc (oldest first) or desc (newest first)")
	}
	if name := v.Get("reason"); name != "" {
		code, ok := store.ParseReasonCode(name)
		if !ok {
			return q, 0, errBadRequest("invalid-query", "reason must be one of "+reasonNames())
		}
		q.Reason = code
	}
	for _, p := range []struct {
		name string
		v    *string
	}{{"txn", &q.Txn}, {"sub", &q.Subject}} {
		if raw := v.Get(p.name); raw != "" {
			if len(raw) > maxSearchLength || !utf8.ValidString(raw) {
				return q, 0, errBadRequest("invalid-query", p.name+" must be valid UTF-8 of at most "+strconv.Itoa(maxSearchLength)+" bytes")
			}
			*p.v = raw
		}
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"after", &q.After}, {"before", &q.Before}} {
		if raw := v.Get(p.name); raw != "" {
			t, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil {
				return q, 0, errBadRequest("invalid-query", p.name+" must be an RFC 3339 time such as 2024-05-01T12:00:00Z")
			}
			if t.IsZero() && p.t == &q.Before {
				// The zero time means "no bound" to the store; before
				// 0001-01-01T00:00:00Z is a bound that nothing meets.
				t = t.Add(-time.Nanosecond)
			}
			*p.t = t
		}
	}
	page, err := pageQuery(r)
	if err != nil {
		return q, 0, err
	}
	if page == 0 {
		page = 1
	}
	q.Limit = eventPageSize
	q.Offset = (page - 1) * eventPageSize
	return q, page, nil
}

// listEvents lists a subscription's events, oldest first (order=desc:
// newest first), a page of 100 at a time (no page: the first), filtered by
// state, type, reason code and creation time.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	q, page, err := s.eventQuery(r, sid)
	if err != nil {
		return err
	}
	events, total, err := s.DB.Events(cid, sid, q)
	if err != nil {
		return err
	}
	last := max((total+eventPageSize-1)/eventPageSize, 1)
	if page > last {
		page = last
		q.Offset = (page - 1) * eventPageSize
		if events, total, err = s.DB.Events(cid, sid, q); err != nil {
			return err
		}
	}
	items := make([]eventJSON, 0, len(events))
	for i := range events {
		items = append(items, s.toEventJSON(cid, &events[i]))
	}
	base := subscriptionPath(cid, sid) + "/events"
	return writeJSON(w, http.StatusOK, map[string]any{
		"total":     total,
		"_links":    eventPageLinks(base, r.URL.Query(), page, last),
		"_embedded": map[string]any{"events": items},
	})
}

// eventPageLinks builds self, next and prev links that keep the list's filters.
func eventPageLinks(base string, query url.Values, page, last int) map[string]link {
	at := func(n int) link {
		q := url.Values{}
		for _, k := range []string{"state", "type", "reason", "after", "before", "order", "txn", "sub"} {
			if v := query.Get(k); v != "" {
				q.Set(k, v)
			}
		}
		q.Set("page", strconv.Itoa(n))
		return link{Href: base + "?" + q.Encode()}
	}
	links := map[string]link{"self": at(page)}
	if page < last {
		links["next"] = at(page + 1)
	}
	if page > 1 {
		links["prev"] = at(page - 1)
	}
	return links
}

// event reads the event named by the request's path.
func (s *Server) event(r *http.Request, cid uuid.UUID) (store.Event, error) {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return store.Event{}, err
	}
	id, err := pathUUID(r, "eventId")
	if err != nil {
		return store.Event{}, err
	}
	return s.DB.Event(cid, sid, id)
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	e, err := s.event(r, cid)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.toEventJSON(cid, &e))
}

// eventHistory lists every state change of an event, oldest first. An
// attempt in flight is shown as a last executing row.
func (s *Server) eventHistory(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	e, err := s.event(r, cid)
	if err != nil {
		return err
	}
	rows := make([]historyJSON, 0, len(e.History)+1)
	for _, h := range e.History {
		rows = append(rows, historyJSON{At: eventTime(h.At), State: h.State.String(), Attempt: h.Attempt, StatusCode: h.StatusCode, Reason: h.Reason, ReasonCode: h.Code.String(), Endpoint: h.Endpoint})
	}
	if s.eventState(&e) == store.Executing {
		rows = append(rows, historyJSON{At: eventTime(s.DB.Now()), State: store.Executing.String(), Attempt: e.Attempts + 1})
	}
	self := eventPath(cid, e.SubscriptionID, e.ID)
	return writeJSON(w, http.StatusOK, map[string]any{
		"total":     len(rows),
		"_links":    map[string]link{"self": {Href: self + "/history"}, "event": {Href: self}},
		"_embedded": map[string]any{"history": rows},
	})
}

// redeliverEvent puts a failed event back to awaiting-executing.
func (s *Server) redeliverEvent(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	id, err := pathUUID(r, "eventId")
	if err != nil {
		return err
	}
	e, err := s.DB.Redeliver(cid, sid, id)
	if err != nil {
		return err
	}
	out := s.toEventJSON(cid, &e)
	out.State = e.State.String() // as stored, awaiting-executing, whatever the dispatcher does meanwhile
	s.notify(sid)
	return writeJSON(w, http.StatusAccepted, out)
}

func (s *Server) notify(sid uuid.UUID) {
	if s.Hooks.Notify != nil {
		s.Hooks.Notify(sid)
	}
}

// testNotification sends a test token to the subscription's endpoint and
// reports the listener's answer, within the API timeout.
func (s *Server) testNotification(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	sub, err := s.DB.Subscription(cid, sid)
	if err != nil {
		return err
	}
	if s.Hooks.TestNotification == nil {
		return problem(http.StatusServiceUnavailable, "unavailable", "test notifications are not available")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.APITimeout*9/10)
	defer cancel()
	code, ok, err := s.Hooks.TestNotification(ctx, sub)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"statusCode": code, "success": ok})
}

// summary answers a subscription's counts of stored events.
func (s *Server) summary(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	sum, err := s.DB.Summary(cid, sid)
	if err != nil {
		return err
	}
	updated := sum.UpdatedAt
	if updated.IsZero() {
		sub, err := s.DB.Subscription(cid, sid)
		if err != nil {
			return err
		}
		updated = sub.CreatedAt
	}
	byReason := map[string]uint64{}
	for _, c := range store.ReasonCodes() {
		if n := sum.FailedBy[c]; n > 0 {
			byReason[c.String()] = n
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"updatedAt":      eventTime(updated),
		"total":          sum.Succeeded + sum.Retrying + sum.Failed,
		"succeeded":      sum.Succeeded,
		"retrying":       sum.Retrying,
		"failed":         sum.Failed,
		"exportable":     sum.Exportable,
		"failedByReason": byReason,
	})
}

// redeliverQuery reads the optional body of a redeliver-all: an empty body
// or {} selects every failed event; after and before (RFC 3339, on
// createdAt) and reason (a reason code) narrow the selection.
func redeliverQuery(w http.ResponseWriter, r *http.Request, limit int64) (store.FailedQuery, error) {
	var q store.FailedQuery
	body, err := readBody(w, r, limit)
	if err != nil {
		return q, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return q, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return q, errBadRequest("invalid-request-body", "the request body must be a JSON object (or empty)")
	}
	var bad []ParamError
	for k, v := range m {
		var str string
		if json.Unmarshal(v, &str) != nil {
			bad = append(bad, ParamError{Name: k, Reason: "must be a string"})
			continue
		}
		switch k {
		case "after", "before":
			t, err := time.Parse(time.RFC3339Nano, str)
			if err != nil {
				bad = append(bad, ParamError{Name: k, Reason: "must be an RFC 3339 time such as 2024-05-01T12:00:00Z"})
			} else if k == "after" {
				q.After = t
			} else {
				q.Before = t
			}
		case "reason":
			code, ok := store.ParseReasonCode(str)
			if !ok {
				bad = append(bad, ParamError{Name: k, Reason: "must be one of " + reasonNames()})
			}
			q.Reason = code
		default:
			bad = append(bad, ParamError{Name: k, Reason: "is not a member; use after, before and reason"})
		}
	}
	if len(bad) > 0 {
		slices.SortFunc(bad, func(a, b ParamError) int { return strings.Compare(a.Name, b.Name) })
		return q, errInvalidParams(bad)
	}
	return q, nil
}

// timeline answers the subscription's successes and failures per hour over
// the retention window and per minute over the last hour, oldest first;
// spans without an outcome are left out.
func (s *Server) timeline(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	now := s.DB.Now()
	hours, err := s.DB.Timeline(cid, sid, now.Add(-s.exportRetention()), now)
	if err != nil {
		return err
	}
	minutes, err := s.DB.TimelineMinutes(cid, sid, now.Add(-store.MinuteWindow), now)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"hours": outcomesJSON(hours), "minutes": outcomesJSON(minutes)})
}

func outcomesJSON(spans []store.Outcomes) []map[string]any {
	out := make([]map[string]any, 0, len(spans))
	for _, o := range spans {
		out = append(out, map[string]any{"start": o.Start.UTC().Format(time.RFC3339), "succeeded": o.Succeeded, "failed": o.Failed})
	}
	return out
}
