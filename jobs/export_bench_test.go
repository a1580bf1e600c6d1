package jobs

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"hookd/blobsink"
	"hookd/store"
)

// BenchmarkExport exports HOOKD_BENCH_EVENTS (default 1,000,000) failed
// events of one subscription to a file:// bucket with the encoding in
// HOOKD_BENCH_ENCODING (default none), and reports the events per second
// and the process's peak RSS during the export (Linux). Run it with
// -benchtime=1x; each iteration exports a fresh subscription:
//
//	go test ./jobs -run '^$' -bench Export -benchtime=1x
func BenchmarkExport(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("HOOKD_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	enc, err := blobsink.ParseEncoding(os.Getenv("HOOKD_BENCH_ENCODING"))
	if err != nil {
		b.Fatal(err)
	}
	db, _ := openStore(b)
	bucket, err := blobsink.Open(b.Context(), "file://"+filepath.ToSlash(filepath.Join(b.TempDir(), "exports")))
	if err != nil {
		b.Fatal(err)
	}
	defer bucket.Close()
	ex := newTestExporter(db, bucket)
	var took time.Duration
	var peak int64
	for range b.N {
		b.StopTimer()
		s := newSub(b, db, false)
		addFailed(b, db, s, n)
		job, err := db.CreateExport(s.CustomerID, s.ID, string(enc), store.ScopeCustomer, 0)
		if err != nil {
			b.Fatal(err)
		}
		debug.FreeOSMemory()
		resetPeakRSS()
		b.StartTimer()
		start := time.Now()
		if got, err := ex.RunOnce(b.Context()); err != nil || got != 1 {
			b.Fatalf("RunOnce: got %d, %v", got, err)
		}
		took += time.Since(start)
		peak = max(peak, peakRSS())
		if j, _ := db.ExportByID(job.ID); j.EventCount != int64(n) {
			b.Fatalf("got %d events, want %d", j.EventCount, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/took.Seconds(), "events/s")
	if peak > 0 {
		b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
	}
}

// resetPeakRSS resets the kernel's record of the peak RSS (Linux 4.0+).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns the peak resident set size in bytes, 0 when unknown.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
