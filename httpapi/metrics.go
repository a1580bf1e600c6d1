package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// unmatchedRoute is the route label of requests no route matched (404, 405).
const unmatchedRoute = "unmatched"

// apiMetrics are the API's Prometheus metrics. They exist whether or not
// they are registered, so that the handlers never check.
type apiMetrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	intakeAccepted  prometheus.Counter
	intakeRecorded  prometheus.Counter
	intakeRefused   prometheus.Counter
	exportsCreated  prometheus.Counter
	exportsCanceled prometheus.Counter
}

// newAPIMetrics makes the API's metrics and registers them with reg unless
// reg is nil. A registration error is logged; main's registerer reports it
// too and stops the start.
func newAPIMetrics(reg prometheus.Registerer, log zerolog.Logger) *apiMetrics {
	m := &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_http_requests_total",
			Help: "HTTP requests answered, by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookd_http_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by route template and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		intakeAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_intake_events_accepted_total",
			Help: "Events the intake accepted (valid requests, before the fan-out to subscriptions).",
		}),
		intakeRecorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_intake_events_recorded_total",
			Help: "Events the intake recorded for delivery, one per event and subscription that wants it.",
		}),
		intakeRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_intake_requests_refused_total",
			Help: "Intake requests with a valid admin token answered with an error (invalid events, unknown customer, body too large); none of their events is recorded.",
		}),
		exportsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_export_jobs_created_total",
			Help: "Export jobs created through the API.",
		}),
		exportsCanceled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_export_jobs_canceled_total",
			Help: "Export jobs canceled through the API before they began writing.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.intakeAccepted, m.intakeRecorded, m.intakeRefused, m.exportsCreated, m.exportsCanceled} {
			if err := reg.Register(c); err != nil {
				log.Error().Err(err).Msg("register API metrics")
			}
		}
	}
	return m
}

// routeTemplates maps every route of router to its path template with the
// variables' patterns left out ("/{customerId}/webhooks/..."), so that
// labels never carry the ids of a request's path.
func routeTemplates(router *mux.Router) map[*mux.Route]string {
	out := map[*mux.Route]string{}
	_ = router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if t, err := route.GetPathTemplate(); err == nil {
			out[route] = stripPatterns(t)
		}
		return nil
	})
	return out
}

// stripPatterns turns "{id:[0-9a-f]{8}}" into "{id}" throughout a template.
func stripPatterns(tpl string) string {
	var b strings.Builder
	depth := 0
	skipping := false
	for _, c := range tpl {
		switch {
		case c == '{':
			depth++
			if depth == 1 {
				b.WriteRune(c)
				continue
			}
		case c == '}':
			depth--
			if depth == 0 {
				skipping = false
				b.WriteRune(c)
				continue
			}
		case c == ':' && depth == 1:
			skipping = true
		}
		if !skipping {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// methodLabel bounds the method label to the methods HTTP defines.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// observed is the ResponseWriter the metrics see: it keeps the status code
// and learns the matched route from the router's middleware.
type observed struct {
	http.ResponseWriter
	code  int
	route string
}

func (o *observed) WriteHeader(code int) {
	if o.code == 0 {
		o.code = code
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *observed) Write(p []byte) (int, error) {
	if o.code == 0 {
		o.code = http.StatusOK
	}
	return o.ResponseWriter.Write(p)
}

// Flush sends buffered data to the client, for streamed answers.
func (o *observed) Flush() {
	if o.code == 0 {
		o.code = http.StatusOK
	}
	http.NewResponseController(o.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (o *observed) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// routeLabel is the router's middleware: it records the matched route's
// template on the observed writer.
func (s *Server) routeLabel(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o, ok := w.(*observed); ok {
			if route := mux.CurrentRoute(r); route != nil {
				if t, ok := s.templates[route]; ok {
					o.route = t
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// serveObserved serves r through the router and counts it.
func (s *Server) serveObserved(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	o := &observed{ResponseWriter: w, route: unmatchedRoute}
	defer func() {
		code := o.code
		if code == 0 {
			code = http.StatusOK
		}
		method := methodLabel(r.Method)
		s.metrics.requests.WithLabelValues(o.route, method, strconv.Itoa(code)).Inc()
		s.metrics.duration.WithLabelValues(o.route, method).Observe(time.Since(start).Seconds())
	}()
	s.router.ServeHTTP(o, r)
}
