package main

import (
	"bytes"
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

// TestExportQueueConfig: the scope is per customer by default, the
// appliance scope (which let one customer's export refuse another's) is
// refused with a clear message, and --export-writers is bounded.
func TestExportQueueConfig(t *testing.T) {
	c, err := parseServe(nil, envOf(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.ExportScope != "customer" || c.ExportWriters != 1 {
		t.Errorf("defaults: got scope %q and %d writers, want customer and 1", c.ExportScope, c.ExportWriters)
	}
	c, err = parseServe(nil, envOf(map[string]string{"HOOKD_EXPORT_WRITERS": "3"}), &bytes.Buffer{})
	if err != nil || c.ExportWriters != 3 {
		t.Errorf("HOOKD_EXPORT_WRITERS=3: got %d, %v", c.ExportWriters, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--export-scope", "appliance"}, "--export-scope: appliance is no longer a scope"},
		{[]string{"--export-writers", "0"}, "--export-writers: must be 1 to 64"},
		{[]string{"--export-writers", "65"}, "--export-writers: must be 1 to 64"},
	} {
		if _, err := parseServe(tc.args, envOf(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
}
