package serve

import (
	"runtime/debug"
	"slices"
	"testing"
)

// TestTuneCollector: hookd's defaults where GOGC and GOMEMLIMIT are unset,
// the runtime's own settings (from those variables) left alone where set.
func TestTuneCollector(t *testing.T) {
	percent := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})

	c := tuneCollector(func(string) string { return "" })
	if c.GCPercent != DefaultGCPercent || c.MemoryLimit != DefaultMemoryLimit || len(c.FromEnv) != 0 {
		t.Errorf("empty environment: got %+v, want GOGC %d and GOMEMLIMIT %d set by hookd", c, DefaultGCPercent, DefaultMemoryLimit)
	}
	if got := debug.SetGCPercent(DefaultGCPercent); got != DefaultGCPercent {
		t.Errorf("runtime's GC percent: got %d, want %d", got, DefaultGCPercent)
	}

	// What the runtime read from the variables stays.
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(64 << 20)
	env := map[string]string{"GOGC": "50", "GOMEMLIMIT": "64MiB"}
	c = tuneCollector(func(k string) string { return env[k] })
	if c.GCPercent != 50 || c.MemoryLimit != 64<<20 || !slices.Equal(c.FromEnv, []string{"GOGC", "GOMEMLIMIT"}) {
		t.Errorf("GOGC=50 GOMEMLIMIT=64MiB: got %+v, want them kept", c)
	}

	// One set, the other defaulted.
	env = map[string]string{"GOMEMLIMIT": "64MiB"}
	c = tuneCollector(func(k string) string { return env[k] })
	if c.GCPercent != DefaultGCPercent || c.MemoryLimit != 64<<20 || !slices.Equal(c.FromEnv, []string{"GOMEMLIMIT"}) {
		t.Errorf("GOMEMLIMIT=64MiB: got %+v, want GOGC %d and the limit kept", c, DefaultGCPercent)
	}
}
