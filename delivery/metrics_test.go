package delivery

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"hookd/store"
)

// TestDeliveryMetrics counts every attempt by outcome and status class:
// with three attempts per event, an endpoint that answers 503 gives two
// retries and a failure, one that is unreachable the same without a status.
func TestDeliveryMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	env := newDispatchEnv(t, DispatcherOptions{Registerer: reg}, ClientOptions{})
	ok := env.addSub(newListener(t, statusHandler(http.StatusOK)).URL)
	bad := env.addSub(newListener(t, statusHandler(http.StatusServiceUnavailable)).URL)
	gone := env.addSub("http://127.0.0.1:1/hook")
	for _, w := range []struct {
		s     store.Subscription
		n     int
		state store.State
	}{{ok, 4, store.Success}, {bad, 2, store.Failure}, {gone, 1, store.Failure}} {
		for _, a := range env.post(w.s, w.n) {
			env.waitState(w.s, a.ID, w.state)
		}
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	got := map[[2]string]float64{}
	if f := byName["hookd_deliveries_total"]; f != nil {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[[2]string{labels["outcome"], labels["status_class"]}] = m.GetCounter().GetValue()
		}
	}
	want := map[[2]string]float64{
		{"success", "2xx"}:  4,
		{"retry", "5xx"}:    4,
		{"failure", "5xx"}:  2,
		{"retry", "none"}:   2,
		{"failure", "none"}: 1,
	}
	if len(got) != len(want) {
		t.Errorf("hookd_deliveries_total: got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("hookd_deliveries_total{outcome=%q,status_class=%q}: got %v, want %v", k[0], k[1], got[k], v)
		}
	}
	if f := byName["hookd_delivery_attempt_duration_seconds"]; f == nil || f.GetMetric()[0].GetHistogram().GetSampleCount() != 13 {
		t.Errorf("hookd_delivery_attempt_duration_seconds: got %v, want 13 samples", f)
	}
	if f := byName["hookd_delivery_attempts_in_flight"]; f == nil || f.GetMetric()[0].GetGauge().GetValue() != 0 {
		t.Errorf("hookd_delivery_attempts_in_flight: got %v, want 0", f)
	}
}

func TestStatusClass(t *testing.T) {
	for code, want := range map[int]string{0: "none", 200: "2xx", 204: "2xx", 302: "3xx", 404: "4xx", 503: "5xx", 600: "none"} {
		if got := statusClass(code); got != want {
			t.Errorf("statusClass(%d): got %q, want %q", code, got, want)
		}
	}
}

// TestOutcomesShareCommits checks the group commit: the outcomes of 32
// attempts answered at the same moment are stored by a few transactions,
// not one each, and every event is delivered.
func TestOutcomesShareCommits(t *testing.T) {
	const n = 32
	reg := prometheus.NewRegistry()
	env := newDispatchEnv(t, DispatcherOptions{Registerer: reg, MaxPerEndpoint: n}, ClientOptions{})
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	s := env.addSub(newListener(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	}).URL)
	added := env.post(s, n)
	for range n {
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("the attempts did not all arrive within 5 s")
		}
	}
	close(release) // all 32 answered at once
	for _, a := range added {
		env.waitState(s, a.ID, store.Success)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "hookd_delivery_outcomes_per_commit" {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		if h.GetSampleSum() != n {
			t.Errorf("outcomes stored: got %v, want %d", h.GetSampleSum(), n)
		}
		if c := h.GetSampleCount(); c == 0 || c > n/2 {
			t.Errorf("transactions for %d outcomes answered together: got %d, want between 1 and %d", n, c, n/2)
		}
		return
	}
	t.Fatal("hookd_delivery_outcomes_per_commit is not registered")
}
