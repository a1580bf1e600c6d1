package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fastDelivery are serve flags that keep delivery tests short: retries
// after 100 ms and 200 ms, no jitter, a short attempt timeout and grace.
var fastDelivery = []string{"--retry-schedule", "0s,100ms,200ms", "--retry-jitter", "0", "--attempt-timeout", "2s", "--shutdown-grace", "2s"}

// evListener is a listener endpoint that records every token it receives.
type evListener struct {
	URL     string
	mu      sync.Mutex
	tokens  []string
	times   []time.Time
	status  func(n int) int   // the answer to the n-th request (1-based); 200 when nil
	headers map[string]string // set on every answer; set before the first request
}

func newEvListener(t *testing.T, status func(n int) int) *evListener {
	t.Helper()
	l := &evListener{status: status}
	srv := httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(srv.Close)
	l.URL = srv.URL + "/listener"
	return l
}

func (l *evListener) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.tokens = append(l.tokens, string(body))
	l.times = append(l.times, time.Now())
	n := len(l.tokens)
	l.mu.Unlock()
	code := http.StatusOK
	if l.status != nil {
		code = l.status(n)
	}
	for k, v := range l.headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(code)
}

func (l *evListener) received() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tokens...)
}

// tokenClaims decodes a token's payload without checking it (the jose
// test checks signatures).
func tokenClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("got a token of %d parts, want 3: %q", len(parts), token)
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// evLine is one intake event of type typ for user sub.
func evLine(typ, sub string) string {
	attrs := ""
	if typ == "entityUpdated" {
		attrs = `,"attributes":["email","name.given"]`
	}
	return fmt.Sprintf(`{"type":%q,"event":{"captureApplicationId":"app1","captureClientId":"cl1","entityType":"user","globalSub":"capture-v1://x/%s","sub":%q%s}}`, typ, sub, sub, attrs)
}

// intakeAnswer is the intake's 202 body.
type intakeAnswer struct {
	Accepted      int `json:"accepted"`
	Recorded      int `json:"recorded"`
	Subscriptions []struct {
		SubscriptionID uuid.UUID   `json:"subscriptionId"`
		EventIDs       []uuid.UUID `json:"eventIds"`
	} `json:"subscriptions"`
}

// ids returns the event ids recorded for subscription sid.
func (a intakeAnswer) ids(sid uuid.UUID) []uuid.UUID {
	for _, s := range a.Subscriptions {
		if s.SubscriptionID == sid {
			return s.EventIDs
		}
	}
	return nil
}

// postNDJSON posts lines to the customer's intake and wants 202.
func postNDJSON(h *hookd, tn tenant, lines ...string) intakeAnswer {
	h.t.Helper()
	resp, body := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, strings.Join(lines, "\n")+"\n", "Content-Type", "application/x-ndjson")
	if resp.StatusCode != http.StatusAccepted {
		h.t.Fatalf("intake: got %d, want 202; body %s", resp.StatusCode, body)
	}
	var a intakeAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		h.t.Fatal(err)
	}
	return a
}

// addSub creates a subscription from body members and returns its id.
func addSub(h *hookd, tn tenant, body map[string]any) uuid.UUID {
	h.t.Helper()
	var out struct{ ID uuid.UUID }
	h.mustCall(http.StatusCreated, http.MethodPost, tn.path("/webhooks/subscriptions"), tn.Token, body, &out)
	return out.ID
}

func subPath(tn tenant, sid uuid.UUID, rest string) string {
	return tn.path("/webhooks/subscriptions/" + sid.String() + rest)
}

// eventView is an event resource as the API shows it.
type eventView struct {
	ID       uuid.UUID `json:"id"`
	State    string    `json:"state"`
	Attempts int       `json:"attempts"`
	Request  struct {
		Endpoint string            `json:"endpoint"`
		Headers  map[string]string `json:"headers"`
		Payload  string            `json:"payload"`
	} `json:"request"`
	Response *struct {
		StatusCode int `json:"statusCode"`
	} `json:"response"`
	Links map[string]struct{ Href string } `json:"_links"`
}

func getEventView(h *hookd, tn tenant, sid, id uuid.UUID) eventView {
	h.t.Helper()
	var e eventView
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events/"+id.String()), tn.Token, nil, &e)
	return e
}

// waitEventState waits up to 10 s for an event to reach state.
func waitEventState(h *hookd, tn tenant, sid, id uuid.UUID, state string) eventView {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e := getEventView(h, tn, sid, id)
		if e.State == state {
			return e
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("event %s: got state %s after 10s, want %s", id, e.State, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type summaryView struct {
	Total, Succeeded, Retrying, Failed, Exportable int
	UpdatedAt                                      string
}

func getSummary(h *hookd, tn tenant, sid uuid.UUID) summaryView {
	h.t.Helper()
	var s summaryView
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/summary"), tn.Token, nil, &s)
	if s.Total != s.Succeeded+s.Retrying+s.Failed {
		h.t.Errorf("summary %+v: total is not succeeded + retrying + failed", s)
	}
	return s
}

func TestIntakeRefusesBadInputWhole(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	l := newEvListener(t, nil)
	sid := addSub(h, tn, map[string]any{"title": "all", "endpoint": l.URL, "events": []string{"entityCreated", "entityUpdated", "entityDeleted"}})
	ndjson := func(body string) (*http.Response, []byte) {
		return h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, body, "Content-Type", "application/x-ndjson")
	}

	body := strings.Join([]string{
		evLine("entityCreated", "ok"),
		`{"type":"entityCreated","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g"}}`,
		``,
		`{"type":"entityExploded","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":"s"}}`,
		`{"type":"entityUpdated","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":"s"},"extra":1}`,
		`{"type":"entityDeleted","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":""},"txn":"nope","toe":"x"}`,
		`not json`,
	}, "\n")
	resp, data := ndjson(body)
	p := readProblem(t, resp, data, http.StatusBadRequest)
	var names []string
	for _, b := range p.Params {
		names = append(names, b.Name)
	}
	want := []string{"line 2: event.sub", "line 4: type", "line 5: extra", "line 5: event.attributes", "line 6: event.sub", "line 6: txn", "line 6: toe", "line 7"}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Errorf("got invalid params %q, want %q", names, want)
	}
	var list struct{ Total int }
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events"), tn.Token, nil, &list)
	if list.Total != 0 {
		t.Errorf("got %d events stored after a refused request, want 0", list.Total)
	}

	cases := []struct {
		name        string
		contentType string
		body        string
		token       string
		path        string
		status      int
	}{
		{"json object", "application/json", evLine("entityCreated", "one"), h.AdminToken, tn.path("/webhooks/events"), http.StatusAccepted},
		{"json with a bad member", "application/json", `{"type":"entityCreated","event":{}}`, h.AdminToken, tn.path("/webhooks/events"), http.StatusBadRequest},
		{"json not an object", "application/json", `[1]`, h.AdminToken, tn.path("/webhooks/events"), http.StatusBadRequest},
		{"not json", "application/json", `{`, h.AdminToken, tn.path("/webhooks/events"), http.StatusBadRequest},
		{"empty ndjson", "application/x-ndjson", "\n\n", h.AdminToken, tn.path("/webhooks/events"), http.StatusBadRequest},
		{"other media type", "text/plain", evLine("entityCreated", "x"), h.AdminToken, tn.path("/webhooks/events"), http.StatusUnsupportedMediaType},
		{"no token", "application/json", evLine("entityCreated", "x"), "", tn.path("/webhooks/events"), http.StatusUnauthorized},
		{"a customer token", "application/json", evLine("entityCreated", "x"), tn.Token, tn.path("/webhooks/events"), http.StatusForbidden},
		{"unknown customer", "application/json", evLine("entityCreated", "x"), h.AdminToken, "/" + uuid.NewString() + "/webhooks/events", http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, data := h.call(http.MethodPost, c.path, c.token, c.body, "Content-Type", c.contentType)
			if resp.StatusCode != c.status {
				t.Errorf("got %d, want %d; body %s", resp.StatusCode, c.status, data)
			}
		})
	}

	// At most 10,000 events per request.
	var many strings.Builder
	for i := range 10001 {
		many.WriteString(evLine("entityCreated", fmt.Sprint(i)))
		many.WriteByte('\n')
	}
	resp, data = ndjson(many.String())
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(data), "10000") {
		t.Errorf("10,001 events: got %d %s, want 400 naming the limit", resp.StatusCode, data)
	}
}

func TestIntakeFanOutDeliveryAndEventStore(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	lc, lu, ld := newEvListener(t, nil), newEvListener(t, nil), newEvListener(t, nil)
	created := addSub(h, tn, map[string]any{"title": "created", "endpoint": lc.URL, "events": []string{"entityCreated"}})
	filtered := addSub(h, tn, map[string]any{"title": "updated emails", "endpoint": lu.URL, "events": []string{"entityUpdated", "entityCreated"},
		"filter": map[string]any{"properties": map[string]any{"entityUpdated": map[string]any{"properties": map[string]any{"attributes": map[string]any{"contains": map[string]any{"const": "email"}}}, "required": []string{"attributes"}}}, "required": []string{"entityUpdated"}}})
	disabled := addSub(h, tn, map[string]any{"title": "off", "endpoint": ld.URL, "events": []string{"entityCreated"}, "enabled": false})

	txn := uuid.NewString()
	lines := []string{
		evLine("entityCreated", "alice"),
		strings.Replace(evLine("entityUpdated", "bob"), `}}`, `,"extra":{"kept":true}},"txn":"`+txn+`","toe":1700000123.9}`, 1),
		strings.Replace(evLine("entityUpdated", "carol"), `"email",`, ``, 1), // attributes without email: filtered out
		evLine("entityDeleted", "dave"), // nobody wants it: dropped
	}
	a := postNDJSON(h, tn, lines...)
	if a.Accepted != 4 || a.Recorded != 3 || len(a.Subscriptions) != 3 {
		t.Fatalf("got %+v, want 4 accepted, 3 recorded for 3 subscriptions", a)
	}
	if len(a.ids(created)) != 1 || len(a.ids(filtered)) != 1 || len(a.ids(disabled)) != 1 {
		t.Fatalf("got %+v, want one event for each subscription", a)
	}

	// The filtered subscription gets bob's update, as signed claims.
	e := waitEventState(h, tn, filtered, a.ids(filtered)[0], "success")
	toks := lu.received()
	if len(toks) != 1 || toks[0] != e.Request.Payload {
		t.Fatalf("got %d tokens, want 1 equal to the event's payload", len(toks))
	}
	c := tokenClaims(t, toks[0])
	ev, _ := c["events"].(map[string]any)["entityUpdated"].(map[string]any)
	if c["jti"] != e.ID.String() || c["txn"] != txn || c["toe"] != float64(1700000123) || ev["sub"] != "bob" || ev["extra"] == nil {
		t.Errorf("got claims %v, want jti %s, txn %s, toe 1700000123 and bob's event with its extra member", c, e.ID, txn)
	}
	if iss := h.URL + "/" + tn.Customer.String() + "/webhooks"; c["iss"] != iss {
		t.Errorf("got iss %v, want %s", c["iss"], iss)
	}
	if e.Request.Endpoint != lu.URL || e.Request.Headers["Content-Type"] != "application/secevent+jwt" || !strings.HasPrefix(e.Request.Headers["User-Agent"], "hookd/") {
		t.Errorf("got request %+v, want the endpoint and the delivery headers", e.Request)
	}
	if e.Attempts != 1 || e.Response == nil || e.Response.StatusCode != 200 {
		t.Errorf("got attempts %d response %+v, want 1 and 200", e.Attempts, e.Response)
	}
	if self := subPath(tn, filtered, "/events/"+e.ID.String()); e.Links["self"].Href != self || e.Links["history"].Href != self+"/history" || e.Links["redeliver"].Href != self+"/redeliver" {
		t.Errorf("got links %v", e.Links)
	}

	// The created-only subscription gets alice, with a generated txn.
	waitEventState(h, tn, created, a.ids(created)[0], "success")
	if c := tokenClaims(t, lc.received()[0]); uuid.Validate(fmt.Sprint(c["txn"])) != nil || c["events"].(map[string]any)["entityCreated"] == nil {
		t.Errorf("got claims %v, want a generated txn and alice's entityCreated", c)
	}
	// The disabled one stores it as failure, unsent.
	if d := getEventView(h, tn, disabled, a.ids(disabled)[0]); d.State != "failure" || d.Attempts != 0 || d.Request.Payload != "" {
		t.Errorf("disabled: got %+v, want failure, no attempt, no payload", d)
	}
	if n := len(ld.received()); n != 0 {
		t.Errorf("the disabled subscription's listener got %d requests, want 0", n)
	}

	var hist struct {
		Embedded struct {
			History []struct {
				State      string `json:"state"`
				Attempt    int    `json:"attempt"`
				StatusCode int    `json:"statusCode"`
				At         string `json:"at"`
			} `json:"history"`
		} `json:"_embedded"`
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, filtered, "/events/"+e.ID.String()+"/history"), tn.Token, nil, &hist)
	var states []string
	for _, r := range hist.Embedded.History {
		states = append(states, r.State)
	}
	if strings.Join(states, ",") != "awaiting-executing,executing,success" || hist.Embedded.History[2].StatusCode != 200 {
		t.Errorf("got history %+v, want awaiting-executing, executing, success (200)", hist.Embedded.History)
	}
	if s := getSummary(h, tn, disabled); s.Failed != 1 || s.Exportable != 1 || s.Total != 1 {
		t.Errorf("disabled summary: got %+v, want 1 failed and exportable", s)
	}
	if s := getSummary(h, tn, created); s.Succeeded != 1 || s.Total != 1 {
		t.Errorf("created summary: got %+v, want 1 succeeded", s)
	}
	// Another customer sees none of it.
	other := h.newTenant()
	h.mustCall(http.StatusNotFound, http.MethodGet, "/"+other.Customer.String()+"/webhooks/subscriptions/"+created.String()+"/events", other.Token, nil, nil)
}

func TestEventsListFiltersAndPages(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	sid := addSub(h, tn, map[string]any{"title": "off", "endpoint": newEvListener(t, nil).URL, "events": []string{"entityCreated"}, "enabled": false})
	var lines []string
	for i := range 230 {
		lines = append(lines, evLine("entityCreated", fmt.Sprint(i)))
	}
	first := postNDJSON(h, tn, lines...).ids(sid)
	time.Sleep(20 * time.Millisecond)
	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"enabled": true}, nil)
	later := postNDJSON(h, tn, evLine("entityCreated", "late")).ids(sid)[0]
	waitEventState(h, tn, sid, later, "success")

	type page struct {
		Total    int
		Links    map[string]struct{ Href string } `json:"_links"`
		Embedded struct {
			Events []eventView `json:"events"`
		} `json:"_embedded"`
	}
	list := func(query string) page {
		var p page
		h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events"+query), tn.Token, nil, &p)
		return p
	}
	p := list("")
	if p.Total != 231 || len(p.Embedded.Events) != 100 || p.Embedded.Events[0].ID != first[0] || p.Links["next"].Href == "" {
		t.Fatalf("no page: got total %d, %d events, links %v; want 231, the first 100, a next link", p.Total, len(p.Embedded.Events), p.Links)
	}
	p = list("?page=3")
	if len(p.Embedded.Events) != 31 || p.Embedded.Events[30].ID != later || p.Links["next"].Href != "" || p.Links["prev"].Href == "" {
		t.Errorf("page 3: got %d events, links %v; want 31 ending with the late one", len(p.Embedded.Events), p.Links)
	}
	if p = list("?page=9"); len(p.Embedded.Events) != 31 || !strings.Contains(p.Links["self"].Href, "page=3") {
		t.Errorf("page past the end: got %d events, self %s; want the last page", len(p.Embedded.Events), p.Links["self"].Href)
	}
	if p = list("?state=failure&page=2"); p.Total != 230 || len(p.Embedded.Events) != 100 || !strings.Contains(p.Links["next"].Href, "state=failure") {
		t.Errorf("failures: got total %d, %d events, links %v; want 230, 100, links keeping the state", p.Total, len(p.Embedded.Events), p.Links)
	}
	if p = list("?state=success"); p.Total != 1 || p.Embedded.Events[0].ID != later {
		t.Errorf("success: got total %d, want the late event", p.Total)
	}
	var created struct {
		CreatedAt string `json:"createdAt"`
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events/"+later.String()), tn.Token, nil, &created)
	if p = list("?after=" + created.CreatedAt); p.Total != 0 {
		t.Errorf("after the last createdAt: got %d, want 0", p.Total)
	}
	if p = list("?before=" + created.CreatedAt); p.Total != 230 {
		t.Errorf("before the last createdAt: got %d, want 230", p.Total)
	}
	for _, q := range []string{"?state=bogus", "?after=yesterday", "?before=2024-13-01T00:00:00Z", "?page=0"} {
		h.mustCall(http.StatusBadRequest, http.MethodGet, subPath(tn, sid, "/events"+q), tn.Token, nil, nil)
	}
	h.mustCall(http.StatusNotFound, http.MethodGet, subPath(tn, sid, "/events/"+uuid.NewString()), tn.Token, nil, nil)
	h.mustCall(http.StatusNotFound, http.MethodGet, subPath(tn, uuid.New(), "/events"), tn.Token, nil, nil)
}

func TestRetriesFailureAndRedelivery(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	var failing sync.Map
	failing.Store("on", true)
	l := newEvListener(t, func(n int) int {
		if v, _ := failing.Load("on"); v == true {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	sid := addSub(h, tn, map[string]any{"title": "flaky", "endpoint": l.URL, "events": []string{"entityCreated"}})
	ids := postNDJSON(h, tn, evLine("entityCreated", "a"), evLine("entityCreated", "b")).ids(sid)
	e := waitEventState(h, tn, sid, ids[0], "failure")
	waitEventState(h, tn, sid, ids[1], "failure")
	if e.Attempts != 3 || e.Response == nil || e.Response.StatusCode != 503 {
		t.Errorf("got attempts %d response %+v, want 3 attempts ending in 503", e.Attempts, e.Response)
	}
	if s := getSummary(h, tn, sid); s.Failed != 2 || s.Exportable != 2 || s.Succeeded != 0 {
		t.Errorf("got summary %+v, want 2 failed and exportable", s)
	}
	byJti := map[any]map[string]int{}
	for _, tok := range l.received() {
		jti := tokenClaims(t, tok)["jti"]
		if byJti[jti] == nil {
			byJti[jti] = map[string]int{}
		}
		byJti[jti][tok]++
	}
	for _, id := range ids {
		if got := byJti[id.String()]; len(got) != 1 || got[e.Request.Payload]+got[getEventView(h, tn, sid, id).Request.Payload] < 3 {
			t.Errorf("event %s: got tokens %v, want one token sent 3 times", id, got)
		}
	}

	// Redelivery: refused while disabled, accepted when failed, refused when not failed.
	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"enabled": false}, nil)
	h.mustCall(http.StatusConflict, http.MethodPost, subPath(tn, sid, "/events/"+ids[0].String()+"/redeliver"), tn.Token, nil, nil)
	h.mustCall(http.StatusConflict, http.MethodPost, subPath(tn, sid, "/events/redeliver"), tn.Token, nil, nil)
	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"enabled": true}, nil)
	failing.Store("on", false)
	var r eventView
	h.mustCall(http.StatusAccepted, http.MethodPost, subPath(tn, sid, "/events/"+ids[0].String()+"/redeliver"), tn.Token, nil, &r)
	if r.State != "awaiting-executing" || r.ID != ids[0] {
		t.Errorf("got %s for %s, want the event in awaiting-executing", r.State, r.ID)
	}
	e = waitEventState(h, tn, sid, ids[0], "success")
	if e.Attempts != 4 {
		t.Errorf("got %d attempts, want 4", e.Attempts)
	}
	h.mustCall(http.StatusConflict, http.MethodPost, subPath(tn, sid, "/events/"+ids[0].String()+"/redeliver"), tn.Token, nil, nil)
	h.mustCall(http.StatusNotFound, http.MethodPost, subPath(tn, sid, "/events/"+uuid.NewString()+"/redeliver"), tn.Token, nil, nil)

	var all struct{ Count int }
	h.mustCall(http.StatusAccepted, http.MethodPost, subPath(tn, sid, "/events/redeliver"), tn.Token, nil, &all)
	if all.Count != 1 {
		t.Errorf("redeliver all: got %d, want 1", all.Count)
	}
	waitEventState(h, tn, sid, ids[1], "success")
	if s := getSummary(h, tn, sid); s.Succeeded != 2 || s.Failed != 0 || s.Total != 2 {
		t.Errorf("got summary %+v, want 2 succeeded", s)
	}
}

// TestRetryAfterAndRedirects: a Retry-After longer than the schedule's wait
// sets the next attempt's due time, and a redirect is not followed. Nothing
// waits for the retry: the listener asks for an hour, and the event's due
// time is read from the store once hookd has stopped.
func TestRetryAfterAndRedirects(t *testing.T) {
	dir := t.TempDir()
	h := startHookd(t, dir, fastDelivery...)
	tn := h.newTenant()
	busy := newEvListener(t, func(n int) int { return http.StatusTooManyRequests })
	// The listener asks for an hour; the schedule's 100 ms is shorter, so the hour wins.
	busy.headers = map[string]string{"Retry-After": "3600"}
	sid := addSub(h, tn, map[string]any{"title": "busy", "endpoint": busy.URL, "events": []string{"entityCreated"}})
	busyID := postNDJSON(h, tn, evLine("entityCreated", "a")).ids(sid)[0]
	if e := waitEventState(h, tn, sid, busyID, "awaiting-retry"); e.Attempts != 1 || e.Response == nil || e.Response.StatusCode != http.StatusTooManyRequests {
		t.Errorf("got %d attempts and response %+v, want 1 attempt answered 429", e.Attempts, e.Response)
	}
	seen := time.Now()
	busy.mu.Lock()
	attempted := busy.times[0]
	busy.mu.Unlock()

	target := newEvListener(t, nil)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redirect.Close()
	rid := addSub(h, tn, map[string]any{"title": "moved", "endpoint": redirect.URL + "/old", "events": []string{"entityCreated"}})
	id := postNDJSON(h, tn, evLine("entityCreated", "b")).ids(rid)[0]
	e := waitEventState(h, tn, rid, id, "failure")
	if e.Attempts != 1 || len(target.received()) != 0 {
		t.Errorf("got %d attempts and %d requests at the redirect target, want 1 and 0", e.Attempts, len(target.received()))
	}

	// The busy listener was not tried again after the schedule's 100 ms,
	// and its event is due an hour after the attempt.
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	tries := 0
	for _, tok := range busy.received() {
		if tokenClaims(t, tok)["jti"] == busyID.String() {
			tries++
		}
	}
	if tries != 1 {
		t.Errorf("got %d attempts of event %s at the listener that asked for an hour, want 1", tries, busyID)
	}
	db := openStore(t, dir)
	stored, err := db.Event(tn.Customer, sid, busyID)
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := attempted.Add(time.Hour), seen.Add(time.Hour); stored.DueAt.Before(lo) || stored.DueAt.After(hi) {
		t.Errorf("got the retry due at %s, want the Retry-After's hour after the attempt: between %s and %s", stored.DueAt, lo, hi)
	}
}
