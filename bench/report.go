package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one figure of the results.
type row struct {
	Phase  string  `json:"phase"`
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	// Target is the target, empty for figures without one.
	Target string `json:"target,omitempty"`
	// Pass is set for figures with a target.
	Pass *bool  `json:"pass,omitempty"`
	Note string `json:"note,omitempty"`
}

// machine describes where the figures come from.
type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpuModel"`
	MemoryMiB int64  `json:"memoryMiB"`
	Go        string `json:"go"`
	Kernel    string `json:"kernel"`
	GOARCH    string `json:"goarch"`
}

// report is the JSON file the harness writes.
type report struct {
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	Seconds    float64   `json:"seconds"`
	Command    string    `json:"command"`
	Scale      float64   `json:"scale"`
	Phases     []string  `json:"phases"`
	Machine    machine   `json:"machine"`
	LoadBefore string    `json:"loadBefore"`
	LoadAfter  string    `json:"loadAfter"`
	Rows       []row     `json:"rows"`
	Errors     []string  `json:"errors"`
}

// target is a bound a figure must meet.
type target struct {
	text string
	ok   func(v float64) bool
}

func atLeast(x float64, unit string) *target {
	return &target{text: "≥ " + num(x) + unit, ok: func(v float64) bool { return v >= x }}
}

func atMost(x float64, unit string) *target {
	return &target{text: "≤ " + num(x) + unit, ok: func(v float64) bool { return v <= x }}
}

func below(x float64, unit string) *target {
	return &target{text: "< " + num(x) + unit, ok: func(v float64) bool { return v < x }}
}

// add records a figure, checked against t when t is not nil.
// count returns the number of rows so far, for since.
func (r *report) count() int { return len(r.Rows) }

// since returns the rows added after the first n.
func (r *report) since(n int) []row { return slices.Clone(r.Rows[n:]) }

// find returns the row of phase and metric.
func (r *report) find(phase, metric string) (row, bool) {
	for _, x := range r.Rows {
		if x.Phase == phase && x.Metric == metric {
			return x, true
		}
	}
	return row{}, false
}

func (r *report) add(phase, metric string, v float64, unit string, t *target, note string) {
	rw := row{Phase: phase, Metric: metric, Value: v, Unit: unit, Note: note}
	if t != nil {
		rw.Target = t.text
		pass := t.ok(v)
		rw.Pass = &pass
	}
	r.Rows = append(r.Rows, rw)
}

// num formats a figure with a precision that suits its size.
func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 1000:
		s := strconv.FormatFloat(v, 'f', 0, 64)
		return group(s)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// group puts thousands separators into an integer string.
func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// writeTable prints the figures as one table.
func (r *report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tMETRIC\tVALUE\tTARGET\tRESULT\tNOTE")
	for _, rw := range r.Rows {
		result := ""
		if rw.Pass != nil {
			result = "PASS"
			if !*rw.Pass {
				result = "MISS"
			}
		}
		val := num(rw.Value)
		if rw.Unit != "" {
			val += " " + rw.Unit
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rw.Phase, rw.Metric, val, rw.Target, result, rw.Note)
	}
	return tw.Flush()
}

// writeJSON writes the report to path.
func (r *report) writeJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// describeMachine reads the CPU, memory, kernel and Go version.
func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GOARCH: runtime.GOARCH, Go: runtime.Version()}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				m.MemoryMiB = kb >> 10
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// loadAverage returns the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// addWindow records a window's peak RSS (checked against t when not nil)
// and CPU use; label prefixes the metrics ("" or "NDJSON batches: ").
func (r *report) addWindow(phase, label string, st windowStats, t *target, note string) {
	if note != "" {
		note += "; "
	}
	r.add(phase, label+"hookd peak RSS", st.PeakMiB, "MiB", t, note+st.RSSNote)
	r.add(phase, label+"hookd CPU", st.CPU.Server, "cores", nil, st.CPU.String())
}
