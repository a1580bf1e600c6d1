package e2e

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape is one parsed answer of GET /metrics.
type scrape map[string]*dto.MetricFamily

// scrapeMetrics gets /metrics and parses the text format.
func scrapeMetrics(h *hookd) scrape {
	h.t.Helper()
	resp, body := h.call(http.MethodGet, "/metrics", "", nil)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("GET /metrics: got %d, want 200: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		h.t.Errorf("GET /metrics: got Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		h.t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families
}

// value returns the value of the sample of family name whose labels are
// the given name, value pairs (a counter, gauge or untyped sample; the
// count of a histogram), and whether there is one. The label node, which
// every metric of a node on PostgreSQL carries, is not among them.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			if l.GetName() != "node" {
				have[l.GetName()] = l.GetValue()
			}
		}
		match := len(have) == len(labels)/2
		for i := 0; match && i+1 < len(labels); i += 2 {
			match = have[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// want checks one sample's value.
func (s scrape) want(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := s.value(name, labels...)
	if !ok {
		t.Errorf("%s%v: missing, want %v", name, labels, want)
		return
	}
	if got != want {
		t.Errorf("%s%v: got %v, want %v", name, labels, got, want)
	}
}

// TestMetricsCountTheLoad drives a known load and compares /metrics with
// it: deliveries that succeed and fail, events in flight to a listener
// that does not answer yet, an invalid intake request, an export, and a
// deleted subscription the janitor purges. No label carries an id.
func TestMetricsCountTheLoad(t *testing.T) {
	okListener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer okListener.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer failing.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()

	// One attempt per event; the janitor runs often, so that it purges the
	// deleted subscription during the test.
	h := startHookd(t, "", "--retry-schedule", "0s", "--export-cooldown", "0", "--janitor-interval", "100ms", "--attempt-timeout", "1m")
	defer close(release) // before hookd stops (t.Cleanup): the slow attempts end
	tn := h.newTenant()
	post := func(typ string, n int) {
		t.Helper()
		lines := make([]string, n)
		for i := range lines {
			lines[i] = testEvent(typ, i)
		}
		postNDJSON(h, tn, lines...)
	}

	// A subscription that is deleted with its 5 failed events.
	gone := addSub(h, tn, map[string]any{"title": "gone", "endpoint": okListener.URL + "/gone", "events": []string{"entityDeleted"}, "enabled": false})
	post("entityDeleted", 5)
	h.mustCall(http.StatusNoContent, http.MethodDelete, subPath(tn, gone, ""), tn.Token, nil, nil)

	okSub := addSub(h, tn, map[string]any{"title": "ok", "endpoint": okListener.URL + "/hook", "events": []string{"entityCreated"}})
	badSub := addSub(h, tn, map[string]any{"title": "bad", "endpoint": failing.URL + "/hook", "events": []string{"entityUpdated"}})
	slowSub := addSub(h, tn, map[string]any{"title": "slow", "endpoint": slow.URL + "/hook", "events": []string{"entityDeleted"}})
	post("entityCreated", 50)
	post("entityUpdated", 10)
	post("entityDeleted", 2)
	if resp, body := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, `{"type":"entityCreated"`); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("invalid intake request: got %d, want 400: %s", resp.StatusCode, body)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		okSum, badSum := getSummary(h, tn, okSub), getSummary(h, tn, badSub)
		if okSum.Succeeded == 50 && badSum.Failed == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got summaries ok %+v and bad %+v after 30s, want 50 succeeded and 10 failed", okSum, badSum)
		}
		time.Sleep(20 * time.Millisecond)
	}
	job := startExport(h, tn, subPath(tn, badSub, "/exports"), nil)
	done := waitExport(h, tn, job.Links["self"].Href)
	if done.State != "completed" || done.EventCount == nil || *done.EventCount != 10 {
		t.Fatalf("export: got %+v, want completed with 10 events", done)
	}
	resp, file := download(h, tn, done.Links["download"].Href)
	if resp.StatusCode != http.StatusOK || len(file) == 0 {
		t.Fatalf("download: got %d with %d bytes, want 200 and the file", resp.StatusCode, len(file))
	}
	if s := getSummary(h, tn, slowSub); s.Retrying != 2 {
		t.Errorf("slow subscription: got summary %+v, want its 2 events waiting", s)
	}

	// The janitor purges the deleted subscription's 5 events (with their
	// entries in the failure index, which do not count).
	var m scrape
	for deadline := time.Now().Add(20 * time.Second); ; {
		m = scrapeMetrics(h)
		if v, _ := m.value("hookd_janitor_removed_total", "task", "deleted_subscriptions"); v >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the janitor did not purge the deleted subscription within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Intake: 5 + 50 + 10 + 2 events, each recorded for one subscription.
	m.want(t, 67, "hookd_intake_events_accepted_total")
	m.want(t, 67, "hookd_intake_events_recorded_total")
	m.want(t, 1, "hookd_intake_requests_refused_total")
	m.want(t, 4, "hookd_http_requests_total", "route", "/{customerId}/webhooks/events", "method", "POST", "code", "202")
	m.want(t, 1, "hookd_http_requests_total", "route", "/{customerId}/webhooks/events", "method", "POST", "code", "400")
	m.want(t, 1, "hookd_http_requests_total", "route", "/{customerId}/webhooks/subscriptions/{subscriptionId}", "method", "DELETE", "code", "204")

	// Deliveries: the 5 events of the disabled subscription were never
	// attempted; the 2 slow ones are still in flight.
	m.want(t, 50, "hookd_deliveries_total", "outcome", "success", "status_class", "2xx")
	m.want(t, 10, "hookd_deliveries_total", "outcome", "failure", "status_class", "5xx")
	if n := len(m["hookd_deliveries_total"].GetMetric()); n != 2 {
		t.Errorf("hookd_deliveries_total: got %d series, want 2", n)
	}
	m.want(t, 60, "hookd_delivery_attempt_duration_seconds")
	m.want(t, 2, "hookd_delivery_attempts_in_flight")

	// Backlog: an event in flight stays awaiting-executing in the store.
	m.want(t, 2, "hookd_backlog_events", "state", "awaiting-executing")
	m.want(t, 0, "hookd_backlog_events", "state", "awaiting-retry")
	if age, ok := m.value("hookd_backlog_oldest_due_age_seconds"); !ok || age <= 0 || age > 60 {
		t.Errorf("hookd_backlog_oldest_due_age_seconds: got %v (present %v), want the slow events' wait, > 0", age, ok)
	}

	// Exports.
	m.want(t, 1, "hookd_export_jobs_created_total")
	m.want(t, 0, "hookd_export_jobs_canceled_total")
	m.want(t, 1, "hookd_export_jobs_started_total")
	m.want(t, 1, "hookd_export_jobs_completed_total")
	m.want(t, 0, "hookd_export_jobs_failed_total")
	m.want(t, 10, "hookd_export_events_written_total")
	m.want(t, float64(len(file)), "hookd_export_bytes_written_total")
	m.want(t, 1, "hookd_export_jobs", "state", "completed")
	for _, st := range []string{"processing", "writing", "canceled", "failed"} {
		m.want(t, 0, "hookd_export_jobs", "state", st)
	}

	// Janitor.
	m.want(t, 5, "hookd_janitor_removed_total", "task", "deleted_subscriptions")
	m.want(t, 0, "hookd_janitor_removed_total", "task", "expired_events")

	m.want(t, 1, "hookd_build_info", "version", version)
	checkMetricNames(t, m)
}

// uuidInLabel finds an id anywhere in a label value.
var uuidInLabel = regexp.MustCompile(`(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}`)

// checkMetricNames wants every family but the Go runtime's, the process's
// and promhttp's to be hookd_ with a help text, and no id in any label.
func checkMetricNames(t *testing.T, m scrape) {
	t.Helper()
	var names []string
	for name, f := range m {
		names = append(names, name)
		std := strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_")
		if !std && (!strings.HasPrefix(name, "hookd_") || f.GetHelp() == "") {
			t.Errorf("%s: want the hookd_ prefix and a help text", name)
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if uuidInLabel.MatchString(l.GetValue()) {
					t.Errorf("%s: got label %s=%q, want no id in labels", name, l.GetName(), l.GetValue())
				}
				if l.GetName() == "route" && strings.Contains(l.GetValue(), ":") {
					t.Errorf("%s: got route %q, want the template without patterns", name, l.GetValue())
				}
			}
		}
	}
	sort.Strings(names)
	if testing.Verbose() {
		t.Logf("metric families: %s", strings.Join(names, ", "))
	}
}
