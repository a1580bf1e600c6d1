package recovery

import (
	"math"
	"runtime/metrics"
	"sync"
	"time"
)

// schedLatencies is the Go runtime's histogram of the time goroutines
// spend runnable before they run: it grows when more goroutines want a CPU
// than there are, which is what a recovery's signatures do to live
// deliveries' attempts on a busy machine.
const schedLatencies = "/sched/latencies:seconds"

// SchedLatency samples the Go scheduler's latency: P99 returns the 99th
// percentile of how long goroutines waited for a CPU since its previous
// call. The runtime keeps the histogram (runtime/metrics), so a sample
// costs a copy of its counts and nothing while no recovery runs.
type SchedLatency struct {
	mu     sync.Mutex
	sample []metrics.Sample
	prev   []uint64
}

// NewSchedLatency returns a sampler whose first P99 covers the time since
// now.
func NewSchedLatency() *SchedLatency {
	s := &SchedLatency{sample: []metrics.Sample{{Name: schedLatencies}}}
	s.P99()
	return s
}

// P99 returns the 99th percentile of the scheduler latency since the
// previous call, zero when no goroutine was scheduled meanwhile.
func (s *SchedLatency) P99() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	metrics.Read(s.sample)
	if s.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0 // not reported by this runtime
	}
	h := s.sample[0].Value.Float64Histogram()
	d := delta(h.Counts, s.prev)
	s.prev = append(s.prev[:0], h.Counts...)
	return percentile(d, h.Buckets, 0.99)
}

// delta returns the counts of cur less those of prev (all of cur when
// prev has another length).
func delta(cur, prev []uint64) []uint64 {
	d := make([]uint64, len(cur))
	for i, c := range cur {
		if len(prev) == len(cur) {
			c -= prev[i]
		}
		d[i] = c
	}
	return d
}

// percentile returns the lower bound of the bucket that holds quantile q
// of counts (buckets has one boundary more than counts), zero when counts
// are all zero.
func percentile(counts []uint64, buckets []float64, q float64) time.Duration {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			lo := buckets[i]
			if math.IsInf(lo, -1) || lo < 0 {
				return 0
			}
			if math.IsInf(lo, 1) {
				return time.Duration(math.MaxInt64)
			}
			return time.Duration(lo * float64(time.Second))
		}
	}
	return 0
}
