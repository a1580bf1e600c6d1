package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// historyView is an event's history as the API shows it.
type historyView struct {
	Embedded struct {
		History []struct {
			State      string `json:"state"`
			Attempt    int    `json:"attempt"`
			StatusCode int    `json:"statusCode"`
			Reason     string `json:"reason"`
			ReasonCode string `json:"reasonCode"`
			Endpoint   string `json:"endpoint"`
		} `json:"history"`
	} `json:"_embedded"`
}

func getHistory(h *hookd, tn tenant, sid, id uuid.UUID) historyView {
	h.t.Helper()
	var v historyView
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events/"+id.String()+"/history"), tn.Token, nil, &v)
	return v
}

// waitReceived waits up to 10 s for l to hold n tokens.
func waitReceived(t *testing.T, l *evListener, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := l.received(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("listener got %d tokens after 10s, want %d", len(l.received()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedeliveryGoesToTheCurrentEndpoint(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	broken := newEvListener(t, func(int) int { return http.StatusInternalServerError })
	fixed := newEvListener(t, nil)
	sid := addSub(h, tn, map[string]any{"title": "moving", "endpoint": broken.URL, "events": []string{"entityCreated"}})
	id := postNDJSON(h, tn, evLine("entityCreated", "u-1")).ids(sid)[0]
	waitEventState(h, tn, sid, id, "failure")

	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"endpoint": fixed.URL}, nil)
	h.mustCall(http.StatusAccepted, http.MethodPost, subPath(tn, sid, "/events/"+id.String()+"/redeliver"), tn.Token, nil, nil)
	e := waitEventState(h, tn, sid, id, "success")

	old := broken.received()
	if len(old) != 3 {
		t.Fatalf("broken listener got %d tokens, want 3", len(old))
	}
	got := waitReceived(t, fixed, 1)
	if len(got) != 1 {
		t.Fatalf("fixed listener got %d tokens, want 1", len(got))
	}
	before, after := tokenClaims(t, old[0]), tokenClaims(t, got[0])
	if aud, ok := after["aud"].([]any); !ok || len(aud) != 1 || aud[0] != fixed.URL {
		t.Errorf("new token aud: got %v, want [%s]", after["aud"], fixed.URL)
	}
	if aud, ok := before["aud"].([]any); !ok || len(aud) != 1 || aud[0] != broken.URL {
		t.Errorf("old token aud: got %v, want [%s]", before["aud"], broken.URL)
	}
	for _, claim := range []string{"jti", "iat", "txn", "toe", "iss"} {
		if before[claim] != after[claim] {
			t.Errorf("claim %s: got %v after the move, want %v as before", claim, after[claim], before[claim])
		}
	}
	if b, a := mustJSON(t, before["events"]), mustJSON(t, after["events"]); b != a {
		t.Errorf("events: got %s after the move, want %s", a, b)
	}
	if after["jti"] != id.String() {
		t.Errorf("jti: got %v, want the event id %s", after["jti"], id)
	}
	if e.Request.Endpoint != fixed.URL || e.Request.Payload != got[0] {
		t.Errorf("event request: got endpoint %q and payload of %d bytes, want %q and the token the listener got", e.Request.Endpoint, len(e.Request.Payload), fixed.URL)
	}

	var endpoints []string
	for _, row := range getHistory(h, tn, sid, id).Embedded.History {
		if row.State == "executing" {
			endpoints = append(endpoints, row.Endpoint)
		}
	}
	want := []string{broken.URL, broken.URL, broken.URL, fixed.URL}
	if len(endpoints) != len(want) {
		t.Fatalf("executing rows name %v, want %v", endpoints, want)
	}
	for i := range want {
		if endpoints[i] != want[i] {
			t.Errorf("attempt %d: got endpoint %q, want %q", i+1, endpoints[i], want[i])
		}
	}
}

// mustJSON returns the JSON of v, for comparing decoded values.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestFailureReasonCodes(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	notFound := newEvListener(t, func(int) int { return http.StatusNotFound })
	sid := addSub(h, tn, map[string]any{"title": "codes", "endpoint": notFound.URL, "events": []string{"entityCreated"}})
	ids := postNDJSON(h, tn, evLine("entityCreated", "u-1"), evLine("entityCreated", "u-2")).ids(sid)
	for _, id := range ids {
		waitEventState(h, tn, sid, id, "failure")
	}

	var sum struct {
		Failed         int            `json:"failed"`
		FailedByReason map[string]int `json:"failedByReason"`
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/summary"), tn.Token, nil, &sum)
	if sum.Failed != 2 || len(sum.FailedByReason) != 1 || sum.FailedByReason["status-4xx"] != 2 {
		t.Errorf("summary: got failed %d by reason %v, want 2, all status-4xx", sum.Failed, sum.FailedByReason)
	}
	var list struct {
		Total int `json:"total"`
		Links map[string]struct {
			Href string `json:"href"`
		} `json:"_links"`
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events?reason=status-4xx"), tn.Token, nil, &list)
	if list.Total != 2 || !strings.Contains(list.Links["self"].Href, "reason=status-4xx") {
		t.Errorf("reason=status-4xx: got total %d, self %q, want 2 and a link keeping the reason", list.Total, list.Links["self"].Href)
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events?reason=status-5xx"), tn.Token, nil, &list)
	if list.Total != 0 {
		t.Errorf("reason=status-5xx: got total %d, want 0", list.Total)
	}
	if resp, body := h.call(http.MethodGet, subPath(tn, sid, "/events?reason=teapot"), tn.Token, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("reason=teapot: got %d %s, want 400", resp.StatusCode, body)
	}
	var ev struct {
		ReasonCode string `json:"reasonCode"`
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events/"+ids[0].String()), tn.Token, nil, &ev)
	if ev.ReasonCode != "status-4xx" {
		t.Errorf("event reasonCode: got %q, want status-4xx", ev.ReasonCode)
	}
	rows := getHistory(h, tn, sid, ids[0]).Embedded.History
	last := rows[len(rows)-1]
	if last.State != "failure" || last.ReasonCode != "status-4xx" || last.StatusCode != 404 {
		t.Errorf("last history row: got %+v, want failure, status-4xx, 404", last)
	}
}

// subView is the part of a subscription resource about disabling.
type subView struct {
	Enabled        bool   `json:"enabled"`
	DisabledAt     string `json:"disabledAt"`
	DisabledReason string `json:"disabledReason"`
}

func TestGoneEndpointDisablesTheSubscription(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	gone := newEvListener(t, func(int) int { return http.StatusGone })
	sid := addSub(h, tn, map[string]any{"title": "gone", "endpoint": gone.URL, "events": []string{"entityCreated"}})
	first := postNDJSON(h, tn, evLine("entityCreated", "u-1")).ids(sid)[0]
	e := waitEventState(h, tn, sid, first, "failure")
	if e.Attempts != 1 || len(gone.received()) != 1 {
		t.Errorf("got %d attempts, %d requests, want 1: a 410 is not retried", e.Attempts, len(gone.received()))
	}
	var sub subView
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, ""), tn.Token, nil, &sub)
	if sub.Enabled || sub.DisabledReason != "endpoint-gone" || sub.DisabledAt == "" {
		t.Fatalf("after a 410: got %+v, want disabled with reason endpoint-gone and a time", sub)
	}
	rows := getHistory(h, tn, sid, first).Embedded.History
	if last := rows[len(rows)-1]; last.ReasonCode != "endpoint-gone" || last.StatusCode != 410 {
		t.Errorf("history of the 410: got last row %+v, want endpoint-gone, 410", last)
	}

	// A new event is not sent: it fails at once, and its history says why.
	next := postNDJSON(h, tn, evLine("entityCreated", "u-2")).ids(sid)[0]
	waitEventState(h, tn, sid, next, "failure")
	rows = getHistory(h, tn, sid, next).Embedded.History
	if last := rows[len(rows)-1]; last.ReasonCode != "subscription-disabled" {
		t.Errorf("history of an event after the disable: got last row %+v, want subscription-disabled", last)
	}
	if len(gone.received()) != 1 {
		t.Errorf("the gone endpoint got %d requests, want 1", len(gone.received()))
	}
	if v, _ := scrapeMetrics(h).value("hookd_subscriptions_disabled_total", "reason", "endpoint-gone"); v != 1 {
		t.Errorf("hookd_subscriptions_disabled_total{reason=endpoint-gone}: got %v, want 1", v)
	}
	if !strings.Contains(h.Stderr.String(), `"reason":"endpoint-gone"`) {
		t.Errorf("log: got %s, want a warning naming endpoint-gone", h.Stderr.String())
	}

	// The read-only members cannot be patched; re-enabling clears them.
	if resp, body := h.call(http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"disabledReason": nil}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("patching disabledReason: got %d %s, want 400", resp.StatusCode, body)
	}
	sub = subView{}
	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"enabled": true}, &sub)
	if !sub.Enabled || sub.DisabledReason != "" || sub.DisabledAt != "" {
		t.Errorf("re-enabled: got %+v, want enabled without reason or time", sub)
	}
}

// withID is an intake line with the sender's id.
func withID(line string, id uuid.UUID) string {
	return `{"id":"` + id.String() + `",` + line[1:]
}

func TestIntakeIsIdempotent(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	l := newEvListener(t, nil)
	sid := addSub(h, tn, map[string]any{"title": "once", "endpoint": l.URL, "events": []string{"entityCreated"}})
	a, b := uuid.New(), uuid.New()
	post := func(body string, header ...string) (*http.Response, []byte) {
		return h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, body, append([]string{"Content-Type", "application/x-ndjson"}, header...)...)
	}
	type answer struct {
		intakeAnswer
		Duplicates []uuid.UUID `json:"duplicates"`
	}
	decode := func(resp *http.Response, body []byte) answer {
		t.Helper()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("intake: got %d %s, want 202", resp.StatusCode, body)
		}
		var out answer
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}

	// Sender ids: the events are recorded once; their tokens' jti is the id.
	first := decode(post(withID(evLine("entityCreated", "u-1"), a) + "\n" + withID(evLine("entityCreated", "u-2"), b) + "\n"))
	if first.Recorded != 2 || len(first.Duplicates) != 0 {
		t.Fatalf("first: got %+v, want 2 recorded, no duplicates", first)
	}
	retry := decode(post(withID(evLine("entityCreated", "u-1"), a) + "\n" + evLine("entityCreated", "u-3") + "\n"))
	if retry.Accepted != 2 || retry.Recorded != 1 || len(retry.Duplicates) != 1 || retry.Duplicates[0] != a {
		t.Errorf("retry: got %+v, want 2 accepted, 1 recorded, duplicates [%s]", retry, a)
	}
	got := waitReceived(t, l, 3)
	jtis := map[any]int{}
	for _, tok := range got {
		jtis[tokenClaims(t, tok)["jti"]]++
	}
	if jtis[a.String()] != 1 || jtis[b.String()] != 1 || len(jtis) != 3 {
		t.Errorf("jtis delivered: got %v, want %s and %s once each and one more", jtis, a, b)
	}
	if resp, body := post(`{"id":"not-a-uuid",` + evLine("entityCreated", "u-4")[1:] + "\n"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "line 1: id") {
		t.Errorf("a bad id: got %d %s, want 400 naming line 1: id", resp.StatusCode, body)
	}

	// Idempotency-Key: the same answer again, nothing stored twice.
	batch := evLine("entityCreated", "k-1") + "\n" + evLine("entityCreated", "k-2") + "\n"
	resp1, body1 := post(batch, "Idempotency-Key", "batch-0001")
	once := decode(resp1, body1)
	resp2, body2 := post(batch, "Idempotency-Key", "batch-0001")
	if resp2.StatusCode != http.StatusAccepted || string(body2) != string(body1) || resp2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: got %d %s (replayed %q), want 202 and the first body %s", resp2.StatusCode, body2, resp2.Header.Get("Idempotent-Replayed"), body1)
	}
	if once.Recorded != 2 {
		t.Errorf("keyed request: got %d recorded, want 2", once.Recorded)
	}
	if resp, body := post(evLine("entityCreated", "k-3")+"\n", "Idempotency-Key", "batch-0001"); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("the key with another body: got %d %s, want 422", resp.StatusCode, body)
	}
	if resp, body := post(batch, "Idempotency-Key", strings.Repeat("k", 256)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a key of 256 characters: got %d %s, want 400", resp.StatusCode, body)
	}
	var list struct {
		Total int `json:"total"`
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events"), tn.Token, nil, &list)
	if list.Total != 5 {
		t.Errorf("events stored: got %d, want 5", list.Total)
	}
}

func TestPublishAgainStoresNothingTwice(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	l := newEvListener(t, nil)
	sid := addSub(h, tn, map[string]any{"title": "publish", "endpoint": l.URL, "events": []string{"entityCreated"}})
	own := uuid.New()
	var b strings.Builder
	for i := 1; i <= 10; i++ {
		line := evLine("entityCreated", fmt.Sprintf("p-%d", i))
		if i == 3 {
			line = withID(line, own)
		}
		b.WriteString(line + "\n")
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	publish := func(extra ...string) string {
		t.Helper()
		args := append([]string{"publish", "--data", h.Data, "--customer", tn.Customer.String(), "--batch", "4"}, extra...)
		stdout, stderr, err := cliRun(t, t.Context(), append(args, file)...)
		if err != nil {
			t.Fatalf("publish %v: %v\nstderr: %s", extra, err, stderr)
		}
		return stdout
	}
	if out := publish(); !strings.Contains(out, "accepted 10 events and recorded 10 deliveries; 0 events were duplicates") {
		t.Errorf("first run: got %q, want 10 recorded", out)
	}
	if out := publish(); !strings.Contains(out, "accepted 10 events and recorded 0 deliveries; 10 events were duplicates") {
		t.Errorf("second run: got %q, want 10 duplicates and nothing recorded", out)
	}
	if out := publish("--from-line", "7"); !strings.Contains(out, "4 lines in 1 requests") || !strings.Contains(out, "recorded 0 deliveries; 4 events were duplicates") {
		t.Errorf("--from-line 7: got %q, want lines 7 to 10 sent, all duplicates", out)
	}
	var list struct {
		Total int `json:"total"`
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events"), tn.Token, nil, &list)
	if list.Total != 10 {
		t.Errorf("events stored: got %d, want 10", list.Total)
	}
	// The line's own id is its jti.
	found := false
	for _, tok := range waitReceived(t, l, 10) {
		found = found || tokenClaims(t, tok)["jti"] == own.String()
	}
	if !found {
		t.Errorf("no token with the line's own id %s as jti", own)
	}
}

func TestRedeliverAWindowOfFailures(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	broken := newEvListener(t, func(int) int { return http.StatusServiceUnavailable })
	fixed := newEvListener(t, nil)
	sid := addSub(h, tn, map[string]any{"title": "window", "endpoint": broken.URL, "events": []string{"entityCreated"}})
	before := postNDJSON(h, tn, evLine("entityCreated", "w-1"), evLine("entityCreated", "w-2")).ids(sid)
	for _, id := range before {
		waitEventState(h, tn, sid, id, "failure")
	}
	var last struct {
		CreatedAt string `json:"createdAt"`
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events/"+before[1].String()), tn.Token, nil, &last)
	night := postNDJSON(h, tn, evLine("entityCreated", "w-3"), evLine("entityCreated", "w-4"), evLine("entityCreated", "w-5")).ids(sid)
	for _, id := range night {
		waitEventState(h, tn, sid, id, "failure")
	}
	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"endpoint": fixed.URL}, nil)

	redeliver := func(body any) (*http.Response, []byte) {
		return h.call(http.MethodPost, subPath(tn, sid, "/events/redeliver"), tn.Token, body)
	}
	var count struct{ Count int }
	for _, bad := range []any{`{"after":"yesterday"}`, `{"reason":"teapot"}`, `{"since":"2026-01-01T00:00:00Z"}`, `[1]`} {
		if resp, body := redeliver(bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("body %s: got %d %s, want 400", bad, resp.StatusCode, body)
		}
	}
	h.mustCall(http.StatusAccepted, http.MethodPost, subPath(tn, sid, "/events/redeliver"), tn.Token, map[string]any{"reason": "status-4xx"}, &count)
	if count.Count != 0 {
		t.Errorf("reason status-4xx: got %d redelivered, want 0", count.Count)
	}
	h.mustCall(http.StatusAccepted, http.MethodPost, subPath(tn, sid, "/events/redeliver"), tn.Token,
		map[string]any{"after": last.CreatedAt, "reason": "status-5xx"}, &count)
	if count.Count != 3 {
		t.Errorf("the night's window: got %d redelivered, want 3", count.Count)
	}
	for _, id := range night {
		waitEventState(h, tn, sid, id, "success")
	}
	for _, id := range before {
		if e := getEventView(h, tn, sid, id); e.State != "failure" {
			t.Errorf("event before the window: got %s, want failure", e.State)
		}
	}
	if got := len(waitReceived(t, fixed, 3)); got != 3 {
		t.Errorf("fixed listener: got %d tokens, want 3", got)
	}
}
