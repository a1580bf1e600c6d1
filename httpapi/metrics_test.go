package httpapi

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// value reads a counter's value.
func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// uuidRE finds an id anywhere in a label value.
var uuidRE = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func TestStripPatterns(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/healthz", "/healthz"},
		{"/{customerId}/webhooks/subscriptions/{subscriptionId}", "/{customerId}/webhooks/subscriptions/{subscriptionId}"},
		{"/{customerId}/webhooks/subscriptions/{subscriptionId}/events/{eventId:" + uuidPattern + "}/history",
			"/{customerId}/webhooks/subscriptions/{subscriptionId}/events/{eventId}/history"},
		{"/a/{x:[0-9]+}/{y}", "/a/{x}/{y}"},
	} {
		if got := stripPatterns(tc.in); got != tc.want {
			t.Errorf("stripPatterns(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRequestMetrics counts requests by route template and status code
// and the intake's events, without any id in a label.
func TestRequestMetrics(t *testing.T) {
	db, cust, _ := testTenant(t)
	reg := prometheus.NewRegistry()
	const admin = "metrics-admin-token"
	s := New(Options{DB: db, AdminToken: admin, Registerer: reg})
	srv := httptest.NewServer(s)
	defer srv.Close()

	send := func(method, path, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: got %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	intake := "/" + cust.String() + "/webhooks/events"
	send(http.MethodGet, "/healthz", "", http.StatusOK)
	send(http.MethodGet, "/healthz", "", http.StatusOK)
	send(http.MethodGet, "/no/such/"+uuid.NewString(), "", http.StatusNotFound)
	send(http.MethodDelete, "/healthz", "", http.StatusMethodNotAllowed)
	send(http.MethodPost, intake, `{"type":`, http.StatusBadRequest)
	send(http.MethodPost, intake, `{"type":"entityCreated","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":"s"}}`, http.StatusAccepted)
	send(http.MethodGet, "/"+cust.String()+"/webhooks/subscriptions/"+uuid.NewString()+"/events/"+uuid.NewString(), "", http.StatusUnauthorized)

	const eventRoute = "/{customerId}/webhooks/subscriptions/{subscriptionId}/events/{eventId}"
	for _, tc := range []struct {
		route, method, code string
		want                float64
	}{
		{"/healthz", "GET", "200", 2},
		{unmatchedRoute, "GET", "404", 1},
		{unmatchedRoute, "DELETE", "405", 1},
		{"/{customerId}/webhooks/events", "POST", "400", 1},
		{"/{customerId}/webhooks/events", "POST", "202", 1},
		{eventRoute, "GET", "401", 1},
	} {
		if got := value(t, s.metrics.requests.WithLabelValues(tc.route, tc.method, tc.code)); got != tc.want {
			t.Errorf("requests{route=%q,method=%s,code=%s}: got %v, want %v", tc.route, tc.method, tc.code, got, tc.want)
		}
	}
	for name, tc := range map[string]struct {
		c    prometheus.Counter
		want float64
	}{
		"accepted": {s.metrics.intakeAccepted, 1},
		"recorded": {s.metrics.intakeRecorded, 0}, // the customer has no subscription
		"refused":  {s.metrics.intakeRefused, 1},
	} {
		if got := value(t, tc.c); got != tc.want {
			t.Errorf("intake %s: got %v, want %v", name, got, tc.want)
		}
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "hookd_") || f.GetHelp() == "" {
			t.Errorf("family %q: want the hookd_ prefix and a help text", f.GetName())
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if uuidRE.MatchString(l.GetValue()) {
					t.Errorf("%s: got label %s=%q, want no id", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
		seen++
	}
	if seen < 3 {
		t.Errorf("got %d metric families, want the API's", seen)
	}
}

// TestNoRegisterer: a server without a Registerer registers nothing and
// serves as usual.
func TestNoRegisterer(t *testing.T) {
	s := New(Options{})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != http.StatusOK {
		t.Errorf("got %d, want 200", w.Code)
	}
}
