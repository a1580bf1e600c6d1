package jobs

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// exporterMetrics are the Exporter's Prometheus metrics. They exist whether
// or not they are registered.
type exporterMetrics struct {
	started     prometheus.Counter
	completed   prometheus.Counter
	failed      prometheus.Counter
	interrupted prometheus.Counter
	bytes       prometheus.Counter
	events      prometheus.Counter
	retried     prometheus.Counter
	blobErrors  *prometheus.CounterVec
}

func newExporterMetrics(reg prometheus.Registerer, log zerolog.Logger) *exporterMetrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &exporterMetrics{
		started:     counter("hookd_export_jobs_started_total", "Export files the exporter began to write (a job interrupted by a shutdown or crash begins again)."),
		completed:   counter("hookd_export_jobs_completed_total", "Export jobs completed: file committed and events marked exported."),
		failed:      counter("hookd_export_jobs_failed_total", "Export jobs that failed (the bucket refused the file, or writing was interrupted too often)."),
		interrupted: counter("hookd_export_jobs_interrupted_total", "Export writes cut short by a shutdown; the job is written again at the next start."),
		bytes:       counter("hookd_export_bytes_written_total", "Bytes of completed export files as stored (compressed when the job asks for it)."),
		events:      counter("hookd_export_events_written_total", "Events written to completed export files, one NDJSON line each."),
		retried:     counter("hookd_export_jobs_retried_total", "Export writes that failed on the blob store and wait for a retry."),
		blobErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_export_blob_errors_total",
			Help: "Errors of the blob store seen by the exporter, by operation: write (a file could not be written), cleanup (a file or unfinished upload could not be removed).",
		}, []string{"operation"}),
	}
	for _, op := range []string{"write", "cleanup"} { // both show, at 0, from the start
		m.blobErrors.WithLabelValues(op)
	}
	register(reg, log, "export", m.started, m.completed, m.failed, m.interrupted, m.bytes, m.events, m.retried, m.blobErrors)
	return m
}

// janitorMetrics are the Janitor's Prometheus metrics.
type janitorMetrics struct {
	removed *prometheus.CounterVec
	errors  *prometheus.CounterVec
}

func newJanitorMetrics(reg prometheus.Registerer, log zerolog.Logger, tasks []Task) *janitorMetrics {
	m := &janitorMetrics{
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_janitor_removed_total",
			Help: "Items the janitor deleted, by task: events, tokens, export jobs and files, aborted uploads (an event's index entries go with it and do not count).",
		}, []string{"task"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_janitor_errors_total",
			Help: "Janitor task runs that ended in an error, by task.",
		}, []string{"task"}),
	}
	for _, t := range tasks { // every task shows, at 0, from the start
		m.removed.WithLabelValues(taskLabel(t.Name))
		m.errors.WithLabelValues(taskLabel(t.Name))
	}
	register(reg, log, "janitor", m.removed, m.errors)
	return m
}

// taskLabel turns a task name into a label value: "expired events" is
// "expired_events".
func taskLabel(name string) string { return strings.ReplaceAll(name, " ", "_") }

// register registers cs with reg unless reg is nil; an error is logged.
func register(reg prometheus.Registerer, log zerolog.Logger, what string, cs ...prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			log.Error().Err(err).Msg("register " + what + " metrics")
		}
	}
}
