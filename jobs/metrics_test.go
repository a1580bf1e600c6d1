package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"gocloud.dev/blob/memblob"

	"hookd/store"
)

// gather returns the registry's samples as "name{label=value,...}" -> value
// (counters and gauges; one label at most, as the jobs' metrics have).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestExporterMetrics(t *testing.T) {
	db, _ := openStore(t)
	b := memblob.OpenBucket(nil)
	defer b.Close()
	reg := prometheus.NewRegistry()
	ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Log: zerolog.Nop(), PublicURL: testPublicURL, Registerer: reg})
	s := newSub(t, db, false)
	addFailed(t, db, s, 7)
	if _, err := db.CreateExport(s.CustomerID, s.ID, "gzip", store.ScopeCustomer, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := ex.RunOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("RunOnce: got %d, %v, want 1 job completed", n, err)
	}
	jobs, err := db.Exports(s.CustomerID, s.ID, time.Time{})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("got jobs %v, %v, want 1", jobs, err)
	}
	got := gather(t, reg)
	for name, want := range map[string]float64{
		"hookd_export_jobs_started_total":     1,
		"hookd_export_jobs_completed_total":   1,
		"hookd_export_jobs_failed_total":      0,
		"hookd_export_jobs_interrupted_total": 0,
		"hookd_export_events_written_total":   7,
		"hookd_export_bytes_written_total":    float64(jobs[0].Size),
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s: got %v (present %v), want %v", name, v, ok, want)
		}
	}
	if jobs[0].Size <= 0 {
		t.Errorf("got file size %d, want > 0", jobs[0].Size)
	}
}

func TestJanitorMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	j := NewJanitor(JanitorOptions{Log: zerolog.Nop(), Registerer: reg, Tasks: []Task{
		{Name: "expired events", Run: func(context.Context) (int, error) { return 3, nil }},
		{Name: "broken", Run: func(context.Context) (int, error) { return 2, errors.New("disk on fire") }},
		{Name: "idle", Run: func(context.Context) (int, error) { return 0, nil }},
	}})
	before := gather(t, reg)
	if v, ok := before["hookd_janitor_removed_total{task=idle}"]; !ok || v != 0 {
		t.Errorf("before a run: got %v (present %v), want every task at 0", v, ok)
	}
	j.RunOnce(context.Background())
	j.RunOnce(context.Background())
	got := gather(t, reg)
	for name, want := range map[string]float64{
		"hookd_janitor_removed_total{task=expired_events}": 6,
		"hookd_janitor_removed_total{task=broken}":         4,
		"hookd_janitor_removed_total{task=idle}":           0,
		"hookd_janitor_errors_total{task=broken}":          2,
		"hookd_janitor_errors_total{task=expired_events}":  0,
	} {
		if got[name] != want {
			t.Errorf("%s: got %v, want %v", name, got[name], want)
		}
	}
}

// TestNilRegisterer: components without a Registerer work and register nothing.
func TestNilRegisterer(t *testing.T) {
	j := NewJanitor(JanitorOptions{Log: zerolog.Nop(), Tasks: []Task{{Name: "x", Run: func(context.Context) (int, error) { return 1, nil }}}})
	j.RunOnce(context.Background())
	db, _ := openStore(t)
	b := memblob.OpenBucket(nil)
	defer b.Close()
	ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Log: zerolog.Nop()})
	if _, err := ex.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}
