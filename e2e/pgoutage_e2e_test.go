package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"hookd/store/pgtest"
)

// TestDatabaseOutage: hookd on PostgreSQL loses its database under load.
// Meanwhile the intake answers 503 /store-unavailable with Retry-After and
// /readyz says why; the outcomes of attempts in flight are held. When the
// database is back, hookd goes on by itself: every event acknowledged
// before or after the outage is delivered and recorded as delivered, none
// is sent more than its in-flight attempt once more.
func TestDatabaseOutage(t *testing.T) {
	if !onPostgres() {
		t.Skipf("PostgreSQL only (%s=postgres)", storeEnv)
	}
	ctx := context.Background()
	pg := pgtest.New(t) // a cluster of the test's own, to kill
	dsn, err := pg.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const perEndpoint = 4
	h := startHookd(t, "", "--store", dsn, "--max-per-endpoint", strconv.Itoa(perEndpoint),
		"--retry-schedule", "0s,100ms,200ms", "--retry-jitter", "0", "--attempt-timeout", "60s", "--shutdown-grace", "5s", "--client-rate", "0")
	tn := h.newTenant()
	l := newGatedListener(t)
	sid := addSub(h, tn, map[string]any{"title": "outage", "endpoint": l.URL, "events": []string{"entityCreated"}})
	var lines []string
	for i := range 20 {
		lines = append(lines, evLine("entityCreated", "before-"+strconv.Itoa(i)))
	}
	acked := postNDJSON(h, tn, lines...).ids(sid)
	waitUntil(t, 10*time.Second, "the attempts in flight", func() bool { return l.active.Load() == perEndpoint })

	pg.Kill()
	waitUntil(t, 10*time.Second, "/readyz to answer 503", func() bool { return readyzStatus(h.URL) == http.StatusServiceUnavailable })
	_, body := h.call(http.MethodGet, "/readyz", "", nil)
	if !strings.Contains(string(body), "cannot reach its store") {
		t.Errorf("got /readyz %s, want the reason", body)
	}
	resp, body := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, evLine("entityCreated", "refused")+"\n", "Content-Type", "application/x-ndjson")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"/store-unavailable"`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("intake without the database: got %d %s (Retry-After %q), want 503 /store-unavailable with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}

	// The attempts in flight end; their outcomes wait for the database.
	l.open()
	waitUntil(t, 30*time.Second, "a refused outcome write", func() bool {
		return metricValue(h, "hookd_delivery_outcome_write_errors_total") >= 1
	})
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the intake to accept events again", func() bool {
		resp, body := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, evLine("entityCreated", "after")+"\n", "Content-Type", "application/x-ndjson")
		if resp.StatusCode != http.StatusAccepted {
			return false
		}
		var a intakeAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, a.ids(sid)...)
		return true
	})
	if got := readyzStatus(h.URL); got != http.StatusOK {
		t.Errorf("got /readyz %d with the database back, want 200", got)
	}
	for _, id := range acked {
		waitEventState(h, tn, sid, id, "success")
	}
	total, most := l.requests()
	if dups := total - len(acked); dups > perEndpoint || most > 2 {
		t.Errorf("got %d duplicate requests (at most %d for one event), want at most the %d attempts in flight when the database went", dups, most, perEndpoint)
	}
	t.Logf("%d events acknowledged, %d requests received", len(acked), total)
}
