// Command bench is hookd's benchmark harness. It builds hookd, runs it as a
// real process on fresh data directories, starts loopback listeners, drives
// load through the public API and prints one table of figures, each with
// the target it is held to, plus a JSON file of the same figures.
//
// Phases (all by default; --phases picks some):
//
//	delivery   per algorithm (RS256, ES256, EdDSA): the pure signing rate, then deliveries per second to healthy listeners
//	latency    intake-to-listener latency at a steady 500 events/s over 20 subscriptions, and at 2,000/s with EdDSA
//	isolation  the same while 2 of the 20 listeners hang or answer 500
//	intake     events/s in NDJSON batches of 1,000, and as single-event requests from 32 clients
//	export     export of 1,000,000 failed events (none and zstd), then the download
//	recovery   recovery of 100,000 failed events of one subscription while live traffic flows
//	           to it and to others: live p99 with and without the recovery, its duration
//	postgres   the intake and EdDSA deliveries/s with hookd on PostgreSQL (a throw-away,
//	           durable cluster), the database's CPU per 1,000 deliveries, beside the embedded store's
//	cluster    EdDSA deliveries/s, the database's CPU per 1,000 deliveries and p99 intake-to-listener
//	           latency with one hookd node and with three on one PostgreSQL database; three's rate ÷ one's
//	full-store a store of 10,000,000 events over 100 subscriptions (seven days and 40 hours), its bytes
//	           per event, the p99 latency while the janitor deletes, deliveries/s, intake, the event
//	           list and the summary on it against the fresh stores', an export of 1,000,000 failures
//
// The latency and isolation phases are repeated at 250 events/s, for
// reference (--also-rate).
//
// Every phase also reports hookd's peak RSS. --scale shrinks every size and
// duration for a quick run. Run it from the repository with `make bench`
// (BENCHFLAGS="--scale 0.05" for a quick run); see bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"hookd/store"
)

// allPhases lists the phases in the order they run.
var allPhases = []string{"delivery", "latency", "isolation", "intake", "export", "recovery", "postgres", "cluster", "full-store"}

// config is the harness's command line.
type config struct {
	scale  float64
	out    string
	phases []string
	keep   bool
	work   string
	rate   float64 // events per second of the latency and isolation phases
	// alsoRate, when positive, repeats them at this rate, for reference.
	alsoRate float64
	// eddsaRate, when positive, runs the latency phase with EdDSA
	// subscriptions at this rate.
	eddsaRate float64
	// algs are the signing algorithms of the delivery phase.
	algs []string
	// profile, when set, is the directory where the delivery phase writes
	// a CPU profile of hookd per algorithm.
	profile string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var phases, algs string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Float64Var(&c.scale, "scale", 1, "size of the run: 1 is the issue's sizes (about 6 minutes on 2 cores); 0.05 is a quick run")
	fs.StringVar(&c.out, "out", "", "JSON results file (default bench/out/results-<time>.json in the repository)")
	fs.StringVar(&phases, "phases", strings.Join(allPhases, ","), "comma-separated phases to run: "+strings.Join(allPhases, ", "))
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory (hookd binary, data directories and logs)")
	fs.StringVar(&c.work, "work", "", "work directory (default a new temporary directory)")
	fs.Float64Var(&c.rate, "rate", defaultLatencyRate, "events per second of the latency and isolation phases (their targets hold at 500)")
	fs.Float64Var(&c.alsoRate, "also-rate", defaultLatencyRate/2, "repeat the latency and isolation phases at this rate, for reference (0: do not)")
	fs.Float64Var(&c.eddsaRate, "eddsa-rate", defaultEdDSALatencyRate, "run the latency phase with EdDSA subscriptions at this rate too (its target holds at 2000; 0: do not)")
	fs.StringVar(&algs, "algs", strings.Join(benchAlgs, ","), "comma-separated signing algorithms of the delivery phase (the ratios need RS256)")
	fs.StringVar(&c.profile, "profile", "", "directory for CPU profiles of hookd: per algorithm of the delivery phase (cpu-<alg>.pprof), of the intake phase's NDJSON batches (cpu-intake-intake.pprof) and of the full store's deliveries (default none)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: go run ./bench [flags]   (or: make bench BENCHFLAGS='--scale 0.05')")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.scale <= 0 || c.scale > 10 {
		return c, errors.New("--scale must be in (0, 10]")
	}
	if c.rate < 1 || c.rate > 100000 {
		return c, errors.New("--rate must be in [1, 100000]")
	}
	if c.alsoRate < 0 || c.alsoRate > 100000 || c.alsoRate == c.rate {
		return c, errors.New("--also-rate must be 0 or in [1, 100000] and differ from --rate")
	}
	if c.eddsaRate < 0 || c.eddsaRate > 100000 {
		return c, errors.New("--eddsa-rate must be 0 or in [1, 100000]")
	}
	for _, p := range strings.Split(phases, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(allPhases, p) {
			return c, fmt.Errorf("--phases: unknown phase %q (phases: %s)", p, strings.Join(allPhases, ", "))
		}
		if !slices.Contains(c.phases, p) {
			c.phases = append(c.phases, p)
		}
	}
	if len(c.phases) == 0 {
		return c, errors.New("--phases: no phase given")
	}
	for _, a := range strings.Split(algs, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !slices.Contains(benchAlgs, a) {
			return c, fmt.Errorf("--algs: unknown algorithm %q (algorithms: %s)", a, strings.Join(benchAlgs, ", "))
		}
		if !slices.Contains(c.algs, a) {
			c.algs = append(c.algs, a)
		}
	}
	if len(c.algs) == 0 {
		return c, errors.New("--algs: no algorithm given")
	}
	// In benchAlgs' order: RS256 first, so that its second measurement
	// comes after the faster algorithms'.
	slices.SortFunc(c.algs, func(a, b string) int { return slices.Index(benchAlgs, a) - slices.Index(benchAlgs, b) })
	return c, nil
}

// harness is one run.
type harness struct {
	cfg    config
	rep    *report
	hc     *http.Client
	bin    string
	work   string
	base   time.Time // the origin of every time the listeners record
	stderr io.Writer
	start  time.Time
	// exported is the data the intake phase left for the export phase.
	exported *exportSetup
	// The fresh stores' figures of this run, for the full store's
	// comparisons: deliveries/s per algorithm, NDJSON intake events/s.
	freshRates  map[string]float64
	freshIntake float64
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.stderr, "bench %6.1fs  %s\n", time.Since(h.start).Seconds(), fmt.Sprintf(format, args...))
}

func (h *harness) has(phase string) bool { return slices.Contains(h.cfg.phases, phase) }

// scaled returns d times the scale, at least floor.
func (h *harness) scaled(d, floor time.Duration) time.Duration {
	return max(time.Duration(float64(d)*h.cfg.scale), floor)
}

// scaledN returns n times the scale, at least floor.
func (h *harness) scaledN(n, floor int) int {
	return max(int(math.Round(float64(n)*h.cfg.scale)), floor)
}

// run is the whole program.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	h := &harness{cfg: cfg, hc: newHTTPClient(), base: time.Now(), stderr: stderr, start: time.Now(), freshRates: map[string]float64{}}
	h.rep = &report{
		StartedAt:  time.Now().UTC(),
		Command:    "go run ./bench " + strings.Join(args, " "),
		Scale:      cfg.scale,
		Phases:     cfg.phases,
		Machine:    describeMachine(),
		LoadBefore: loadAverage(),
		Rows:       []row{},
		Errors:     []string{},
	}
	h.work = cfg.work
	if h.work == "" {
		if h.work, err = os.MkdirTemp("", "hookd-bench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(h.work, 0o755); err != nil {
		return err
	}
	if cfg.keep {
		defer h.logf("work directory kept: %s", h.work)
	} else {
		defer os.RemoveAll(h.work)
	}
	h.logf("scale %g, phases %s, %d CPUs, load %s; building hookd", cfg.scale, strings.Join(cfg.phases, ","), h.rep.Machine.CPUs, h.rep.LoadBefore)
	if h.bin, err = buildHookd(ctx, root, h.work); err != nil {
		return err
	}

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"delivery", h.runDelivery},
		{"latency", func(ctx context.Context) error { return h.runLatency(ctx, false, cfg.rate, store.AlgRS256) }},
		{"isolation", func(ctx context.Context) error { return h.runLatency(ctx, true, cfg.rate, store.AlgRS256) }},
		{"latency", func(ctx context.Context) error { return h.alsoLatency(ctx, false) }},
		{"isolation", func(ctx context.Context) error { return h.alsoLatency(ctx, true) }},
		{"latency", h.eddsaLatency},
		{"intake", h.runIntake},
		{"export", h.runExport},
		{"recovery", h.runRecovery},
		{"postgres", h.runPostgres},
		{"cluster", h.runCluster},
		{"full-store", h.runFullStore},
	}
	var failed []string
	for _, st := range steps {
		if !h.has(st.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		h.logf("phase %s", st.name)
		if err := st.fn(ctx); err != nil {
			h.logf("phase %s failed: %v", st.name, err)
			h.rep.Errors = append(h.rep.Errors, st.name+": "+err.Error())
			failed = append(failed, st.name)
		}
	}

	h.rep.FinishedAt = time.Now().UTC()
	h.rep.Seconds = math.Round(time.Since(h.start).Seconds()*10) / 10
	h.rep.LoadAfter = loadAverage()
	out := cfg.out
	if out == "" {
		out = filepath.Join(root, "bench", "out", "results-"+h.rep.StartedAt.Format("20060102-150405")+".json")
	}
	fmt.Fprintf(stdout, "hookd benchmark: scale %g, %d CPUs (%s), %s, load %s -> %s, %.0fs\n\n",
		cfg.scale, h.rep.Machine.CPUs, h.rep.Machine.CPUModel, h.rep.Machine.Go, h.rep.LoadBefore, h.rep.LoadAfter, h.rep.Seconds)
	if err := h.rep.writeTable(stdout); err != nil {
		return err
	}
	if cfg.scale != 1 {
		fmt.Fprintf(stdout, "\nScale %g: sizes and durations are scaled, so the figures are indicative only; the targets hold for --scale 1.\n", cfg.scale)
	}
	if err := h.rep.writeJSON(out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nresults: %s\n", out)
	if len(failed) > 0 {
		return fmt.Errorf("phases failed: %s", strings.Join(failed, ", "))
	}
	return nil
}
