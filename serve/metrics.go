package serve

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"hookd/store"
)

// metricsRegistry is the Prometheus registry of one hookd serve: the Go
// and process collectors, the store's scrape-time gauges, and the metrics
// each component registers through its Options. It keeps the first
// registration error, so that serve refuses to start with a broken
// /metrics rather than serve it.
type metricsRegistry struct {
	*prometheus.Registry
	// labelled registers into Registry with the constant labels of every
	// metric (the node's name on a shared store).
	labelled prometheus.Registerer
	mu       sync.Mutex
	err      error
}

// nodeLabel is the constant label that names the node on every metric of
// a node of a shared store.
const nodeLabel = "node"

// newMetricsRegistry returns a registry holding the Go, process and store
// collectors, whose every metric carries labels (none when nil).
func newMetricsRegistry(db store.Store, version string, labels prometheus.Labels) (*metricsRegistry, error) {
	reg := prometheus.NewRegistry()
	r := &metricsRegistry{Registry: reg, labelled: prometheus.WrapRegistererWith(labels, reg)}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStoreCollector(db, version),
	} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return r, nil
}

// Register registers c, with the registry's labels, and remembers the
// first error.
func (r *metricsRegistry) Register(c prometheus.Collector) error {
	err := r.labelled.Register(c)
	if err != nil {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
	return err
}

// MustRegister registers cs as Register does and panics at the first
// error.
func (r *metricsRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister unregisters c, registered with the registry's labels.
func (r *metricsRegistry) Unregister(c prometheus.Collector) bool {
	return r.labelled.Unregister(c)
}

// Err returns the first registration error, nil when there was none.
func (r *metricsRegistry) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// handler serves the registry in the Prometheus text format. A collector
// that fails (the store, say) is logged and left out of that scrape; the
// other metrics are still served.
func (r *metricsRegistry) handler(log zerolog.Logger) http.Handler {
	return promhttp.HandlerFor(r.Registry, promhttp.HandlerOpts{
		ErrorLog:            promLogger{log},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            r, // its own metrics with the registry's labels
		MaxRequestsInFlight: 4,
	})
}

// promLogger adapts a zerolog.Logger to promhttp's error log.
type promLogger struct{ log zerolog.Logger }

func (l promLogger) Println(v ...any) { l.log.Error().Msg(fmt.Sprint(v...)) }

// storeCollector reads gauges from the store at scrape time: the backlog
// per state, the age of the oldest due event, and the export jobs per
// state. Each scrape costs two short read transactions, proportional to
// the number of subscriptions and of kept export jobs.
type storeCollector struct {
	db         store.Store
	version    string
	backlog    *prometheus.Desc
	oldestDue  *prometheus.Desc
	exportJobs *prometheus.Desc
	buildInfo  *prometheus.Desc
}

func newStoreCollector(db store.Store, version string) *storeCollector {
	return &storeCollector{
		db:      db,
		version: version,
		backlog: prometheus.NewDesc("hookd_backlog_events",
			"Events waiting for delivery, by state: awaiting-executing (first attempt) and awaiting-retry.", []string{"state"}, nil),
		oldestDue: prometheus.NewDesc("hookd_backlog_oldest_due_age_seconds",
			"How long the oldest event whose attempt is due has been waiting past its due time; 0 when none is due.", nil, nil),
		exportJobs: prometheus.NewDesc("hookd_export_jobs",
			"Export jobs kept in the store (the export retention period), by state.", []string{"state"}, nil),
		buildInfo: prometheus.NewDesc("hookd_build_info",
			"Always 1; the version label is hookd's version.", []string{"version"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.oldestDue
	ch <- c.exportJobs
	ch <- c.buildInfo
}

// exportStates are the states hookd_export_jobs always reports, 0 or not.
var exportStates = []store.ExportState{store.ExportProcessing, store.ExportWriting, store.ExportCompleted, store.ExportCanceled, store.ExportFailed}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, c.version)
	waiting, retrying, oldest, err := c.db.Backlog()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.backlog, fmt.Errorf("read the backlog: %w", err))
	} else {
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(waiting), store.AwaitingExecuting.String())
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(retrying), store.AwaitingRetry.String())
		age := 0.0
		if !oldest.IsZero() {
			age = max(c.db.Now().Sub(oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.oldestDue, prometheus.GaugeValue, age)
	}
	states, err := c.db.ExportStates()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.exportJobs, fmt.Errorf("count export jobs: %w", err))
		return
	}
	for _, st := range exportStates {
		ch <- prometheus.MustNewConstMetric(c.exportJobs, prometheus.GaugeValue, float64(states[st]), string(st))
	}
}
