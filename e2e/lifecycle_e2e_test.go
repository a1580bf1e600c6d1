package e2e

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestDisableEnableDeleteFollowTheSeed(t *testing.T) {
	// The attempts are held until after the disable: an attempt timeout
	// far above the test's steps keeps a slow machine from cutting them.
	h := startHookd(t, "", append(fastDelivery, "--attempt-timeout", "60s")...)
	tn := h.newTenant()
	release := make(chan struct{})
	l := newEvListener(t, func(int) int {
		<-release // attempts stay in flight until the disable
		return http.StatusOK
	})
	sid := addSub(h, tn, map[string]any{"title": "lamp", "endpoint": l.URL, "events": []string{"entityCreated"}})
	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"enabled": true}, nil)

	var lines []string
	for range 40 {
		lines = append(lines, evLine("entityCreated", uuid.NewString()))
	}
	ids := postNDJSON(h, tn, lines...).ids(sid)
	deadline := time.Now().Add(5 * time.Second)
	for len(l.received()) < 32 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// --max-per-endpoint is 32: 32 attempts are in flight, 8 events wait.
	var list struct{ Total int }
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events?state=executing"), tn.Token, nil, &list)
	if list.Total != 32 {
		t.Errorf("got %d executing, want the 32 blocked attempts", list.Total)
	}
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events?state=awaiting-executing"), tn.Token, nil, &list)
	if list.Total != 8 {
		t.Errorf("got %d awaiting-executing, want 8", list.Total)
	}

	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"enabled": false}, nil)
	during := postNDJSON(h, tn, evLine("entityCreated", "while-off")).ids(sid)[0]
	if e := getEventView(h, tn, sid, during); e.State != "failure" {
		t.Errorf("event while disabled: got %s, want failure", e.State)
	}
	close(release)
	// In-flight attempts finish; every event ends in success (in flight) or
	// failure. The disable fails every waiting event at once, those in
	// flight too, whose success then replaces the failure when their
	// outcome is recorded: the counts are read until they settle.
	var succeeded, failed int
	settle := time.Now().Add(5 * time.Second)
	for {
		succeeded, failed = 0, 0
		for _, id := range ids {
			switch getEventView(h, tn, sid, id).State {
			case "success":
				succeeded++
			case "failure":
				failed++
			}
		}
		if (succeeded == 32 && failed == 8) || time.Now().After(settle) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent := len(l.received())
	if succeeded != sent || succeeded != 32 || failed != 8 {
		t.Errorf("got %d succeeded and %d failed with %d requests sent, want every sent one succeeded and the rest failed", succeeded, failed, sent)
	}

	// Re-enabling delivers new events only.
	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"enabled": true}, nil)
	fresh := postNDJSON(h, tn, evLine("entityCreated", "back")).ids(sid)[0]
	waitEventState(h, tn, sid, fresh, "success")
	time.Sleep(300 * time.Millisecond)
	if got := len(l.received()); got != sent+1 {
		t.Errorf("after re-enable: got %d requests, want %d (only the new event)", got, sent+1)
	}
	if e := getEventView(h, tn, sid, during); e.State != "failure" {
		t.Errorf("event from the disabled time: got %s, want failure still", e.State)
	}

	// Deleting removes the events and stops recording.
	h.mustCall(http.StatusNoContent, http.MethodDelete, subPath(tn, sid, ""), tn.Token, nil, nil)
	h.mustCall(http.StatusNotFound, http.MethodGet, subPath(tn, sid, "/events/"+fresh.String()), tn.Token, nil, nil)
	h.mustCall(http.StatusNotFound, http.MethodGet, subPath(tn, sid, "/events"), tn.Token, nil, nil)
	a := postNDJSON(h, tn, evLine("entityCreated", "after-delete"))
	if a.Recorded != 0 || len(a.Subscriptions) != 0 {
		t.Errorf("after delete: got %+v, want nothing recorded", a)
	}
}

func TestHangingListenerDoesNotDelayOthers(t *testing.T) {
	h := startHookd(t, "", "--retry-schedule", "0s,100ms", "--retry-jitter", "0", "--attempt-timeout", "3s", "--shutdown-grace", "500ms", "--max-per-endpoint", "4")
	tn := h.newTenant()
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(stop) })
	healthy := newEvListener(t, nil)
	hid := addSub(h, tn, map[string]any{"title": "hangs", "endpoint": hang.URL + "/x", "events": []string{"entityCreated"}})
	gid := addSub(h, tn, map[string]any{"title": "healthy", "endpoint": healthy.URL, "events": []string{"entityCreated"}})
	var lines []string
	for range 50 {
		lines = append(lines, evLine("entityCreated", uuid.NewString()))
	}
	start := time.Now()
	a := postNDJSON(h, tn, lines...)
	for _, id := range a.ids(gid) {
		waitEventState(h, tn, gid, id, "success")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the healthy listener's 50 events took %v next to a hanging listener, want well under the 3 s attempt timeout", took)
	}
	var list struct{ Total int }
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, hid, "/events?state=executing"), tn.Token, nil, &list)
	if list.Total != 4 {
		t.Errorf("got %d executing at the hanging listener, want --max-per-endpoint 4", list.Total)
	}
}

func TestTestNotificationE2E(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	ok := newEvListener(t, func(int) int { return http.StatusAccepted })
	sid := addSub(h, tn, map[string]any{"title": "tested", "endpoint": ok.URL, "events": []string{}, "filter": map[string]any{"not": map[string]any{}}})
	var got struct {
		StatusCode int  `json:"statusCode"`
		Success    bool `json:"success"`
	}
	h.mustCall(http.StatusOK, http.MethodPost, subPath(tn, sid, "/test"), tn.Token, nil, &got)
	if got.StatusCode != http.StatusAccepted || !got.Success {
		t.Errorf("got %+v, want 202 and success", got)
	}
	toks := ok.received()
	if len(toks) != 1 {
		t.Fatalf("got %d requests, want 1", len(toks))
	}
	c := tokenClaims(t, toks[0])
	test, _ := c["events"].(map[string]any)["test"].(map[string]any)
	if _, hasTxn := c["txn"]; hasTxn || test == nil || test["id"] != c["jti"] {
		t.Errorf("got claims %v, want events.test.id = jti and no txn", c)
	}
	var list struct{ Total int }
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events"), tn.Token, nil, &list)
	if list.Total != 0 {
		t.Errorf("got %d stored events after a test, want 0", list.Total)
	}

	failing := addSub(h, tn, map[string]any{"title": "down", "endpoint": "http://127.0.0.1:1/nothing", "events": []string{"entityCreated"}})
	h.mustCall(http.StatusOK, http.MethodPost, subPath(tn, failing, "/test"), tn.Token, nil, &got)
	if got.StatusCode != 0 || got.Success {
		t.Errorf("unreachable endpoint: got %+v, want status 0 and no success", got)
	}
	h.mustCall(http.StatusNotFound, http.MethodPost, subPath(tn, uuid.New(), "/test"), tn.Token, nil, nil)
}
