package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rssInterval is how often the sampler reads the process's resident set.
const rssInterval = 50 * time.Millisecond

// rssSampler records the peak resident set size of a process over a
// window: it samples VmRSS every rssInterval and, at the end, also reads
// VmHWM, the kernel's own peak, which it resets at the start of the window
// (writing 5 to /proc/<pid>/clear_refs), so short spikes between samples
// count too. It also records the CPU time the process, the harness, the
// rest of the machine and the hypervisor took over the window.
type rssSampler struct {
	pid   int
	start int64 // VmRSS when the window opened
	cpu   cpuTimes
	stop  chan struct{}
	done  chan struct{}

	mu   sync.Mutex
	peak int64 // bytes
	// The largest anonymous (heap, stacks) and file-backed (the store's
	// memory map, the binary) parts seen, for the notes.
	anon, file int64
}

// sampleRSS starts a window on process pid.
func sampleRSS(pid int) *rssSampler {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	r := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	if st, err := procStatusAll(pid); err == nil {
		r.start = st["VmRSS:"]
	}
	r.cpu = readCPU(pid)
	go r.loop()
	return r
}

func (r *rssSampler) loop() {
	defer close(r.done)
	t := time.NewTicker(rssInterval)
	defer t.Stop()
	for {
		if st, err := procStatusAll(r.pid); err == nil {
			r.mu.Lock()
			r.peak = max(r.peak, st["VmRSS:"])
			r.anon = max(r.anon, st["RssAnon:"])
			r.file = max(r.file, st["RssFile:"]+st["RssShmem:"])
			r.mu.Unlock()
		}
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

// windowStats is what a window recorded.
type windowStats struct {
	PeakMiB float64
	// RSSNote gives the RSS at the start and the largest anonymous and
	// file-backed parts seen by the samples.
	RSSNote string
	CPU     cpuUsage
}

// end closes the window.
func (r *rssSampler) end() windowStats {
	cpu := usageSince(r.cpu, readCPU(r.pid))
	peak, note := r.endDetail()
	return windowStats{PeakMiB: peak, RSSNote: note, CPU: cpu}
}

func (r *rssSampler) endDetail() (float64, string) {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	peak, anon, file := r.peak, r.anon, r.file
	r.mu.Unlock()
	if st, err := procStatusAll(r.pid); err == nil && st["VmHWM:"] > peak {
		peak = st["VmHWM:"]
	}
	const mib = 1 << 20
	return float64(peak) / mib, fmt.Sprintf("%.0f MiB at the start; samples: anonymous up to %.0f MiB, file-backed up to %.0f MiB",
		float64(r.start)/mib, float64(anon)/mib, float64(file)/mib)
}

// procStatusAll reads the "kB" fields of /proc/<pid>/status, in bytes,
// keyed by their names with the colon.
func procStatusAll(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 10, 64); err == nil {
			out[name+":"] = kb << 10
		}
	}
	return out, sc.Err()
}
