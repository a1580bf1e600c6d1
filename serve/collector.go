package serve

import (
	"runtime/debug"
	"runtime/metrics"
)

// Defaults of Go's garbage collector in hookd serve, in force where the
// operator leaves Go's own GOGC and GOMEMLIMIT unset. A delivery allocates
// about 10 KB (the request, its response, the stored outcome), so the
// collector runs often at Go's default GOGC of 100; at 400 it runs a
// quarter as often, and an EdDSA delivery costs about 19 µs less CPU
// (bench/RESULTS.md) for a heap that peaks higher (about 30 MB more in
// the bench's delivery phase). The soft memory limit keeps a large live
// heap (an intake flood holds up to --intake-memory, 256 MiB) from growing
// five times over: near it the collector runs as often as it must, so
// that the peak stays where it was at GOGC=100 (twice the intake's bound).
const (
	DefaultGCPercent   = 400
	DefaultMemoryLimit = 512 << 20
)

// collector is how Go's garbage collector is set for this process.
type collector struct {
	GCPercent   int
	MemoryLimit int64
	// FromEnv names the variables the operator set, which hookd left alone.
	FromEnv []string
}

// tuneCollector applies DefaultGCPercent and DefaultMemoryLimit where
// getenv has no GOGC or GOMEMLIMIT (the runtime has read those itself) and
// returns the settings in force.
func tuneCollector(getenv func(string) string) collector {
	var c collector
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	} else {
		c.FromEnv = append(c.FromEnv, "GOGC")
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	} else {
		c.FromEnv = append(c.FromEnv, "GOMEMLIMIT")
	}
	in := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(in)
	c.GCPercent, c.MemoryLimit = int(in[0].Value.Uint64()), int64(in[1].Value.Uint64())
	return c
}
