package delivery

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"hookd/store"
)

// Values of the outcome label of hookd_deliveries_total.
const (
	outcomeSuccess = "success" // delivered
	outcomeRetry   = "retry"   // to be attempted again
	outcomeFailure = "failure" // failed for good: refused, or its schedule spent
)

// dispatcherMetrics are the dispatcher's Prometheus metrics. They exist
// whether or not they are registered.
type dispatcherMetrics struct {
	deliveries *prometheus.CounterVec
	duration   prometheus.Histogram
	inFlight   prometheus.Gauge
	perCommit  prometheus.Histogram
	held       prometheus.Gauge
	heldErrors prometheus.Counter
	rounds     prometheus.Counter
	disabled   *prometheus.CounterVec
}

// newDispatcherMetrics makes the dispatcher's metrics and registers them
// with reg unless reg is nil. A registration error is logged.
func newDispatcherMetrics(reg prometheus.Registerer, log zerolog.Logger) *dispatcherMetrics {
	m := &dispatcherMetrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_deliveries_total",
			Help: "Delivery attempts made, by outcome (success, retry, failure) and class of the endpoint's status code (2xx, 3xx, 4xx, 5xx, none when there was no answer).",
		}, []string{"outcome", "status_class"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookd_delivery_attempt_duration_seconds",
			Help:    "Duration of delivery attempts, from signing to the endpoint's answer or the attempt's end.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookd_delivery_attempts_in_flight",
			Help: "Delivery attempts under way.",
		}),
		perCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookd_delivery_outcomes_per_commit",
			Help:    "Attempt outcomes stored by one store transaction (the dispatcher's group commit); its count is the number of those transactions.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookd_delivery_outcomes_held",
			Help: "Attempt outcomes kept in memory because the store refused to write them (a full disk, say); their events are not sent again meanwhile. 0 while the store takes writes.",
		}),
		heldErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_delivery_outcome_write_errors_total",
			Help: "Writes of attempt outcomes that the store refused (a full disk, say); the outcomes are held and written again.",
		}),
		rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_delivery_lane_rounds_total",
			Help: "Reads of a subscription's due events by the dispatcher's lanes. It stands still while nothing is due: a rising count on an idle hookd is a lane that does not sleep.",
		}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_subscriptions_disabled_total",
			Help: "Subscriptions hookd disabled, by reason: endpoint-gone (a 410 answer), endpoint-failing (every attempt failed for --auto-disable-after).",
		}, []string{"reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.deliveries, m.duration, m.inFlight, m.perCommit, m.held, m.heldErrors, m.rounds, m.disabled} {
			if err := reg.Register(c); err != nil {
				log.Error().Err(err).Msg("register delivery metrics")
			}
		}
	}
	return m
}

// observe counts a finished attempt with its result r.
func (m *dispatcherMetrics) observe(r *store.AttemptResult, took time.Duration) {
	outcome := outcomeRetry
	switch {
	case r.Outcome == store.Delivered:
		outcome = outcomeSuccess
	case r.Outcome == store.Failed, r.RetryAt.IsZero():
		outcome = outcomeFailure
	}
	m.deliveries.WithLabelValues(outcome, statusClass(r.StatusCode)).Inc()
	m.duration.Observe(took.Seconds())
}

// statusClass is the status_class label of a status code: "2xx" for 204,
// "none" for 0 (no answer).
func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "none"
	}
	return strconv.Itoa(code/100) + "xx"
}
