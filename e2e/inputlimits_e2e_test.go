package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestMaxEventSizeE2E: --max-event-size bounds one intake event object;
// a larger one is 413 naming its line and nothing of the request is
// recorded.
func TestMaxEventSizeE2E(t *testing.T) {
	h := startHookd(t, "", "--max-event-size", "2048")
	tn := h.newTenant()
	var sub struct{ ID string }
	h.mustCall(http.StatusCreated, http.MethodPost, tn.path("/webhooks/subscriptions"), tn.Token,
		map[string]any{"title": "all", "endpoint": "http://127.0.0.1:1/hook", "events": []string{"entityCreated"}}, &sub)
	event := func(pad int) string {
		return `{"type":"entityCreated","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":"s","pad":"` + strings.Repeat("x", pad) + `"}}`
	}
	resp, body := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, event(10)+"\n"+event(3000)+"\n", "Content-Type", "application/x-ndjson")
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), `"line 2: event"`) {
		t.Fatalf("got %d %s, want 413 naming line 2: event", resp.StatusCode, body)
	}
	var accepted struct{ Recorded int }
	h.mustCall(http.StatusAccepted, http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, event(1500), &accepted)
	var list struct{ Total int }
	h.mustCall(http.StatusOK, http.MethodGet, tn.path("/webhooks/subscriptions/"+sub.ID+"/events"), tn.Token, nil, &list)
	if accepted.Recorded != 1 || list.Total != 1 {
		t.Errorf("got %d recorded and %d stored, want only the accepted event", accepted.Recorded, list.Total)
	}
}
