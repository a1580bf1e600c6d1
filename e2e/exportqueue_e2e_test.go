package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestExportsOfTwoCustomersQueue: with the default configuration two
// customers export at once and both are accepted (202) and completed; a
// 409 "Too many active exports" comes only from the same customer's own
// active job. (That B's job waits in processing while A's writes, and the
// round-robin order, are checked in package jobs with a held writer.)
func TestExportsOfTwoCustomersQueue(t *testing.T) {
	h := startHookd(t, "")
	a, b := h.newTenant(), h.newTenant()
	subA, otherA := disabledSub(h, a, "first"), disabledSub(h, a, "second")
	subB := disabledSub(h, b, "only")
	var evA, evB failedEvents
	addFailedEvents(h, a, subA, 30000, 5000, &evA)
	addFailedEvents(h, b, subB, 10, 10, &evB)

	jobA := startExport(h, a, subPath(a, subA, "/exports"), nil)
	jobB := startExport(h, b, subPath(b, subB, "/exports"), nil) // 202, not 409
	resp, data := h.call(http.MethodPost, subPath(a, otherA, "/exports"), a.Token, nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(data), "Too many active exports") {
		t.Errorf("A's second export while its first is active: got %d %s, want 409 Too many active exports", resp.StatusCode, data)
	}
	for _, w := range []struct {
		tn   tenant
		self string
		n    int
	}{{a, jobA.Links["self"].Href, len(evA.ids)}, {b, jobB.Links["self"].Href, len(evB.ids)}} {
		done := waitExport(h, w.tn, w.self)
		if done.State != "completed" || count(done) != int64(w.n) {
			t.Errorf("%s: got %s with %d events, want completed with %d", w.self, done.State, count(done), w.n)
		}
	}
}
