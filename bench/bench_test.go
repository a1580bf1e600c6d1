package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hookd/store/pgtest"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestHarnessSmoke runs every phase of the harness at a tiny scale against
// a real hookd process and checks that each produced its figures and the
// JSON file parses. It checks no timing: speed is measured by make bench,
// never in tests.
func TestHarnessSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs hookd; skipped with -short")
	}
	// Below go test's -timeout of make test, so that a harness that hangs
	// fails here with its log; generous, because make test runs the
	// other packages' tests beside this one.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "results.json")
	var stdout, stderr bytes.Buffer
	// The postgres and cluster phases need a PostgreSQL server: make
	// test installs one; without it (and without
	// HOOKD_REQUIRE_EXTERNAL=1) they are left out.
	phases := allPhases
	if err := pgtest.Available(); err != nil {
		if os.Getenv("HOOKD_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(err)
		}
		t.Logf("the postgres phase is left out: %v", err)
		phases = slices.DeleteFunc(slices.Clone(allPhases), func(p string) bool { return p == "postgres" || p == "cluster" })
	}
	err := run(ctx, []string{"--scale", "0.002", "--out", out, "--work", t.TempDir(), "--phases", strings.Join(phases, ",")}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	if len(rep.Errors) != 0 {
		t.Errorf("got errors %q, want none", rep.Errors)
	}
	if got, want := strings.Join(rep.Phases, ","), strings.Join(phases, ","); got != want {
		t.Errorf("got phases %s, want %s", got, want)
	}
	// Every figure the issue asks for, by phase and metric.
	want := map[string][]string{
		"delivery":                {"pure RS256 signing (hookd signer, all CPUs)", "deliveries/s to healthy listeners (steady)", "delivery rate / pure signing rate", "reference: CPU of a plain net/http exchange", "hookd peak RSS"},
		"delivery ES256":          {"pure ES256 signing (hookd signer, all CPUs)", "pure ES256 signing (crypto/ecdsa, all CPUs)", "deliveries/s to healthy listeners (steady)", "delivery rate / pure signing rate", "deliveries/s ÷ RS256 deliveries/s of this run", "hookd CPU per delivery (steady)", "hookd peak RSS"},
		"delivery EdDSA":          {"pure EdDSA signing (hookd signer, all CPUs)", "pure EdDSA signing (crypto/ed25519, all CPUs)", "deliveries/s to healthy listeners (steady)", "delivery rate / pure signing rate", "deliveries/s ÷ RS256 deliveries/s of this run", "hookd CPU per delivery (steady)", "hookd peak RSS"},
		"latency":                 {"p50 intake to listener", "p95 intake to listener", "p99 intake to listener", "hookd peak RSS"},
		"latency EdDSA at 2000/s": {"p50 intake to listener", "p99 intake to listener", "hookd peak RSS"},
		"isolation":               {"p50 intake to listener", "p95 intake to listener", "p99 intake to listener", "requests to misbehaving listeners", "hookd peak RSS"},
		"intake":                  {"NDJSON batches of 1,000: events accepted/s", "single-event requests, 32 clients: events accepted/s", "NDJSON batches: hookd peak RSS", "single-event requests: hookd peak RSS"},
		"export none":             {"seconds to export", "events exported/s", "MB/s written", "hookd peak RSS"},
		"export zstd":             {"seconds to export", "events exported/s", "MB/s written", "hookd peak RSS"},
		"download none":           {"MB/s through the API to io.Discard", "hookd peak RSS"},
		"recovery": {"failed events recovered", "seconds to recover (request to completed)", "events recovered/s",
			"live p99 intake to listener, the recovered subscription, without recovery", "live p99 intake to listener, the recovered subscription, during recovery",
			"live p99 intake to listener, other subscriptions, without recovery", "live p99 intake to listener, other subscriptions, during recovery", "hookd peak RSS"},
		"full store": {"events stored", "file bytes per stored event", "p99 intake to listener while the janitor deletes",
			"EdDSA deliveries/s ÷ the fresh store's", "EdDSA deliveries/s ÷ the fresh store's, each scaled by its reference exchange"},
		"full store export":                  {"seconds to export", "lines exported/s", "file size", "p99 intake to listener during the export", "p99 intake answer (202) during the export"},
		freshBeforePhase + " delivery EdDSA": {"deliveries/s to healthy listeners (steady)", exchangeMetric},
		freshAfterPhase + " delivery EdDSA":  {"deliveries/s to healthy listeners (steady)", exchangeMetric},
		freshIntakePhase:                     {"NDJSON batches of 1,000: events accepted/s"},
		deliveryAgainPhase:                   {"deliveries/s to healthy listeners (steady)"},
	}
	if slices.Contains(phases, "postgres") {
		want["postgres intake"] = []string{"NDJSON batches of 1,000: events accepted/s", "single-event requests, 32 clients: events accepted/s",
			"NDJSON batches of 1,000: events accepted/s ÷ the embedded store's", "single-event requests, 32 clients: events accepted/s ÷ the embedded store's"}
		want["postgres delivery EdDSA"] = []string{"deliveries/s to healthy listeners (steady)", "deliveries/s ÷ the embedded store's of this run"}
	}
	if slices.Contains(phases, "cluster") {
		for _, n := range clusterSizes {
			want[fmt.Sprintf("cluster of %d", n)] = []string{"EdDSA deliveries/s (steady)", "database CPU per 1,000 deliveries", "hookd CPU per 1,000 deliveries",
				fmt.Sprintf("p99 intake to listener at %d events/s", clusterLatencyRate)}
		}
		want["cluster"] = []string{"3 nodes' deliveries/s ÷ 1 node's"}
	}
	got := map[string]float64{}
	for _, r := range rep.Rows {
		got[r.Phase+"|"+r.Metric] = r.Value
	}
	for phase, metrics := range want {
		for _, m := range metrics {
			v, ok := got[phase+"|"+m]
			if !ok {
				t.Errorf("%s: no figure %q", phase, m)
			} else if !(v > 0) {
				t.Errorf("%s: %q got %v, want a positive figure", phase, m, v)
			}
		}
	}
	// The full store's delivery ratio is held against the mean of the fresh
	// stores measured before and after it, the scaled one is the full
	// store's rate times its reference exchange over the mean of the fresh
	// stores' rates times theirs, and the intake ratio is held against the
	// fresh store that took turns with it.
	near := func(got, want float64) bool { return want > 0 && math.Abs(got-want) <= 1e-6*want }
	const rateMetric, intakeMetric = "deliveries/s to healthy listeners (steady)", "NDJSON batches of 1,000: events accepted/s"
	plain, scaled := got["full store|EdDSA deliveries/s ÷ the fresh store's"], got["full store|EdDSA deliveries/s ÷ the fresh store's, each scaled by its reference exchange"]
	full, before, after := got["full store delivery EdDSA|"+rateMetric], got[freshBeforePhase+" delivery EdDSA|"+rateMetric], got[freshAfterPhase+" delivery EdDSA|"+rateMetric]
	if !near(plain, 100*full/((before+after)/2)) {
		t.Errorf("full store: the delivery ratio is %v, want 100 × %v ÷ the mean of %v and %v (the fresh stores beside it)", plain, full, before, after)
	}
	if ratio, full, fresh := got["full store|NDJSON intake events/s ÷ the fresh store's"], got["full store|"+intakeMetric], got[freshIntakePhase+"|"+intakeMetric]; !near(ratio, 100*full/fresh) {
		t.Errorf("full store: the intake ratio is %v, want 100 × %v ÷ %v (the fresh store taking turns with it)", ratio, full, fresh)
	}
	refFull, refBefore, refAfter := got["full store delivery EdDSA|"+exchangeMetric], got[freshBeforePhase+" delivery EdDSA|"+exchangeMetric], got[freshAfterPhase+" delivery EdDSA|"+exchangeMetric]
	if want := 100 * full * refFull / ((before*refBefore + after*refAfter) / 2); !near(scaled, want) {
		t.Errorf("full store: the scaled delivery ratio is %v, want %v (100 × %v × %v ÷ the mean of %v × %v and %v × %v)", scaled, want, full, refFull, before, refBefore, after, refAfter)
	}
	// The faster algorithms are held against the mean of RS256's
	// deliveries before and after them.
	rsBefore, rsAfter := got["delivery|"+rateMetric], got[deliveryAgainPhase+"|"+rateMetric]
	for _, alg := range []string{"ES256", "EdDSA"} {
		if ratio, rate := got["delivery "+alg+"|deliveries/s ÷ RS256 deliveries/s of this run"], got["delivery "+alg+"|"+rateMetric]; !near(ratio, rate/((rsBefore+rsAfter)/2)) {
			t.Errorf("delivery %s: the ratio to RS256 is %v, want %v ÷ the mean of %v and %v", alg, ratio, rate, rsBefore, rsAfter)
		}
	}
	// Idle CPU after every phase that ran a hookd: present, and a figure
	// (it may well be zero).
	idlePhases := []string{"delivery", "delivery ES256", "delivery EdDSA", deliveryAgainPhase, "latency", "latency EdDSA at 2000/s", "isolation", "intake", "export none", "export zstd"}
	if slices.Contains(phases, "postgres") {
		idlePhases = append(idlePhases, "postgres intake", "postgres delivery EdDSA")
		if v, ok := got["postgres delivery EdDSA|database CPU per 1,000 deliveries"]; !ok || v < 0 {
			t.Errorf("postgres: got the database's CPU %v (present: %v), want a figure of zero or more", v, ok)
		}
	}
	for _, phase := range idlePhases {
		if v, ok := got[phase+"|"+idleMetric]; !ok || v < 0 {
			t.Errorf("%s: got idle CPU %v (present: %v), want a figure of zero or more", phase, v, ok)
		}
	}
	// The targets of the faster algorithms and of the EdDSA latency are
	// held, whatever their result.
	targets := map[string]bool{}
	for _, r := range rep.Rows {
		if r.Target != "" {
			targets[r.Phase+"|"+r.Metric] = true
		}
	}
	held := []string{
		"delivery ES256|deliveries/s ÷ RS256 deliveries/s of this run",
		"delivery EdDSA|deliveries/s ÷ RS256 deliveries/s of this run",
		"delivery EdDSA|deliveries/s to healthy listeners (steady)",
		"latency EdDSA at 2000/s|p99 intake to listener",
		"full store|file bytes per stored event",
		"full store|EdDSA deliveries/s ÷ the fresh store's",
		"full store|NDJSON intake events/s ÷ the fresh store's",
		"full store|p99 intake to listener while the janitor deletes",
	}
	if slices.Contains(phases, "postgres") {
		held = append(held, "postgres intake|single-event requests, 32 clients: events accepted/s")
	}
	for _, pm := range held {
		if !targets[pm] {
			t.Errorf("%s: no target held", pm)
		}
	}
	for _, r := range rep.Rows {
		if r.Target != "" && r.Pass == nil {
			t.Errorf("%s %q has a target but no result", r.Phase, r.Metric)
		}
	}
	if !strings.Contains(stdout.String(), "PHASE") || !strings.Contains(stdout.String(), "p99 intake to listener") {
		t.Errorf("got table\n%s\nwant the header and the latency rows", stdout.String())
	}
	if rep.Machine.CPUs < 1 || rep.Command == "" {
		t.Errorf("got machine %+v and command %q, want both described", rep.Machine, rep.Command)
	}
}

// TestAlgsOrder checks that --algs runs RS256 first whatever the order
// given, so that its second measurement follows the faster algorithms'.
func TestAlgsOrder(t *testing.T) {
	for _, tc := range []struct{ flag, want string }{
		{"EdDSA,RS256", "RS256,EdDSA"},
		{"EdDSA,ES256,RS256", "RS256,ES256,EdDSA"},
		{"ES256", "ES256"},
	} {
		c, err := parseFlags([]string{"--algs", tc.flag}, io.Discard)
		if err != nil {
			t.Fatalf("--algs %s: %v", tc.flag, err)
		}
		if got := strings.Join(c.algs, ","); got != tc.want {
			t.Errorf("--algs %s: got %s, want %s", tc.flag, got, tc.want)
		}
	}
}
