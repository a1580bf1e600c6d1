package recovery

import (
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestPercentileOfBuckets(t *testing.T) {
	buckets := []float64{math.Inf(-1), 0, 0.001, 0.002, 0.004, math.Inf(1)}
	for _, tt := range []struct {
		name   string
		counts []uint64
		q      float64
		want   time.Duration
	}{
		{"none", []uint64{0, 0, 0, 0, 0}, 0.99, 0},
		{"all below a millisecond", []uint64{0, 100, 0, 0, 0}, 0.99, 0},
		{"one in a hundred late", []uint64{0, 99, 0, 1, 0}, 0.99, 0},
		{"two in a hundred late", []uint64{0, 98, 0, 2, 0}, 0.99, 2 * time.Millisecond},
		{"the median", []uint64{0, 40, 20, 40, 0}, 0.5, time.Millisecond},
		{"beyond the last bound", []uint64{0, 0, 0, 0, 5}, 0.99, 4 * time.Millisecond},
		{"below zero", []uint64{5, 0, 0, 0, 0}, 0.99, 0},
	} {
		if got := percentile(tt.counts, buckets, tt.q); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDeltaOfCounts(t *testing.T) {
	if got := delta([]uint64{5, 7, 9}, []uint64{1, 7, 2}); got[0] != 4 || got[1] != 0 || got[2] != 7 {
		t.Errorf("got %v, want [4 0 7]", got)
	}
	if got := delta([]uint64{5, 7}, nil); got[0] != 5 || got[1] != 7 {
		t.Errorf("without a previous sample: got %v, want [5 7]", got)
	}
}

// TestSchedLatencySeesABusyCPU: on one CPU, a goroutine that wakes
// others one by one and goes on computing makes them wait for the
// runtime's preemption (about 10 ms), and the sampler reports that wait
// (the runtime measures one scheduling in 8 of each goroutine, hence many
// goroutines); the next sample, of a quiet moment, reports less. This
// measures the real scheduler, so it takes real time (about 130 ms).
func TestSchedLatencySeesABusyCPU(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const woken = 64
	var wg sync.WaitGroup
	gates := make([]chan struct{}, woken)
	for i := range gates {
		gates[i] = make(chan struct{})
		wg.Add(1)
		go func() { defer wg.Done(); <-gates[i] }()
	}
	runtime.Gosched() // let them all block
	s := NewSchedLatency()
	go func() {
		for _, g := range gates {
			close(g) // its goroutine is runnable from here
			spin(2 * time.Millisecond)
		}
	}()
	wg.Wait()
	busy := s.P99()
	if busy < time.Millisecond {
		t.Fatalf("p99 scheduler latency %v with the CPU held, want at least 1 ms", busy)
	}
	if quiet := s.P99(); quiet >= busy {
		t.Errorf("p99 scheduler latency %v when quiet, want below the busy %v", quiet, busy)
	}
}

// spin computes for d without blocking.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			_ = i * i
		}
	}
}
