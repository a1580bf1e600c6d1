// Package diskspace watches the free space of the file system that holds
// a directory (hookd's data directory) and reports when it falls below a
// reserve, so that hookd refuses new work before the disk is full and
// keeps the reserve for the outcomes of the deliveries already accepted.
package diskspace

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Defaults of Options.
const (
	// DefaultReservePercent and DefaultReserveFloor make the default
	// reserve: that percentage of the file system, or the floor when it
	// is larger.
	DefaultReservePercent = 2
	DefaultReserveFloor   = 32 << 20
	// DefaultInterval is how often the file system is read.
	DefaultInterval = 2 * time.Second
)

// maxReserve bounds a configured reserve: 1 PiB.
const maxReserve = 1 << 50

// Usage is the size of a file system and its space free for hookd (what
// an unprivileged process may still write), in bytes.
type Usage struct {
	Total uint64
	Free  uint64
}

// Options configure a Monitor.
type Options struct {
	// Dir is a directory on the file system watched.
	Dir string
	// Reserve is the free space, in bytes, below which the Monitor reports
	// the file system low: DefaultReserve of its size when zero; negative
	// turns the reserve off (never low).
	Reserve int64
	// Interval is how often the file system is read; DefaultInterval when zero.
	Interval time.Duration
	// Pending, when set, returns the bytes the data will still grow by
	// for work already accepted (the deliveries waiting for their first
	// attempt, whose outcomes are yet to be stored). They are kept free on
	// top of the reserve, so that a backlog can always drain.
	Pending func() (uint64, error)
	// Log receives a warning when the space falls below the reserve, an
	// info line when it comes back, and read errors (each once).
	Log zerolog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// DefaultReserve is the reserve of a file system of total bytes when none
// is configured.
func DefaultReserve(total uint64) uint64 {
	return max(total/100*DefaultReservePercent, DefaultReserveFloor)
}

// ParseReserve reads a reserve setting: "auto" (0: DefaultReserve), "0"
// (-1: no reserve) or a size in bytes with an optional unit: B, KB, MB,
// GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), like
// "512MiB" or "2GB".
func ParseReserve(s string) (int64, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "auto", "":
		return 0, nil
	case "0":
		return -1, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size like 512MiB, auto or 0", s)
	}
	num, unit := s, ""
	if i > 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size like 512MiB, auto or 0", s)
	}
	mult, ok := units[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s, unit)
	}
	if n > maxReserve/mult {
		return 0, fmt.Errorf("%q is larger than 1 PiB", s)
	}
	if n == 0 {
		return -1, nil
	}
	return n * mult, nil
}

var units = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// Monitor reads the free space of a file system every Interval and keeps
// the answer for Low. Start runs its goroutine, Close stops it.
type Monitor struct {
	o Options

	mu      sync.Mutex
	low     bool
	reason  string
	readErr bool // the last read failed (logged once)
	started bool

	free, reserve, pending, lowGauge prometheus.Gauge

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New returns a Monitor that has not read the file system yet: Low is
// false until Start or Check.
func New(o Options) *Monitor {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	m := &Monitor{
		o: o,
		free: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookd_disk_free_bytes",
			Help: "Free space of the data directory's file system, as of the last read.",
		}),
		reserve: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookd_disk_reserve_bytes",
			Help: "Free space below which the intake refuses events (503 /insufficient-storage); 0 when the reserve is off.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookd_disk_pending_bytes",
			Help: "Space kept free on top of the reserve for the deliveries waiting for their first attempt, as of the last read.",
		}),
		lowGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookd_disk_low",
			Help: "1 while the free space of the data directory's file system is below the reserve, else 0.",
		}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{m.free, m.reserve, m.pending, m.lowGauge} {
			if err := o.Registerer.Register(c); err != nil {
				o.Log.Error().Err(err).Msg("register disk space metrics")
			}
		}
	}
	return m
}

// Start reads the file system once, then every Interval on a goroutine
// that exits at Close or when ctx ends. Call it once.
func (m *Monitor) Start(ctx context.Context) {
	_ = m.Check()
	m.mu.Lock()
	m.started = true
	m.mu.Unlock()
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.o.Interval)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				_ = m.Check()
			}
		}
	}()
}

// Close stops the goroutine of Start and waits for it to exit.
func (m *Monitor) Close() {
	m.once.Do(func() { close(m.stop) })
	m.mu.Lock()
	started := m.started
	m.mu.Unlock()
	if started {
		<-m.done
	}
}

// Low reports whether the free space was below the reserve at the last
// read and, when it was, why, in words for an operator.
func (m *Monitor) Low() (low bool, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.low, m.reason
}

// Check reads the file system now and updates Low, the metrics and the
// log. A failed read keeps the previous answer.
func (m *Monitor) Check() error {
	u, err := Stat(m.o.Dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if !m.readErr {
			m.o.Log.Error().Err(err).Str("dir", m.o.Dir).Msg("read the free space of the data directory's file system")
		}
		m.readErr = true
		return err
	}
	m.readErr = false
	reserve := m.reserveOf(u)
	var pending uint64
	if m.o.Pending != nil && m.o.Reserve >= 0 {
		if pending, err = m.o.Pending(); err != nil {
			m.o.Log.Debug().Err(err).Msg("read the pending growth of the data")
			pending = 0
		}
	}
	m.free.Set(float64(u.Free))
	m.reserve.Set(float64(reserve))
	m.pending.Set(float64(pending))
	low := u.Free < reserve+pending
	switch {
	case low:
		m.reason = fmt.Sprintf("the file system of %s has %s free, below the reserve of %s", m.o.Dir, human(u.Free), human(reserve))
		if pending > 0 {
			m.reason += fmt.Sprintf(" plus %s for the deliveries waiting for their first attempt", human(pending))
		}
		if !m.low {
			m.o.Log.Warn().Str("dir", m.o.Dir).Uint64("freeBytes", u.Free).Uint64("reserveBytes", reserve).Uint64("pendingBytes", pending).
				Msg("free disk space is below the reserve: the intake refuses events (503) until space is freed")
		}
		m.lowGauge.Set(1)
	case m.low:
		m.reason = ""
		m.o.Log.Info().Str("dir", m.o.Dir).Uint64("freeBytes", u.Free).Uint64("reserveBytes", reserve).Uint64("pendingBytes", pending).
			Msg("free disk space is above the reserve again: the intake accepts events")
		m.lowGauge.Set(0)
	}
	m.low = low
	return nil
}

// reserveOf is the reserve on a file system of usage u.
func (m *Monitor) reserveOf(u Usage) uint64 {
	switch {
	case m.o.Reserve < 0:
		return 0
	case m.o.Reserve == 0:
		return DefaultReserve(u.Total)
	}
	return uint64(m.o.Reserve)
}

// human writes n bytes in MiB with one decimal, or in bytes below 1 MiB.
func human(n uint64) string {
	if n < 1<<20 {
		return strconv.FormatUint(n, 10) + " bytes"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}
