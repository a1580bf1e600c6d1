package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"hookd/config"
	"hookd/store/pgtest"
	"hookd/wire"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openMain opens a Main on args (a listener on a free port, JSON logs,
// the admin token adminToken added) and closes it when the test ends.
func openMain(t *testing.T, args ...string) *Main {
	t.Helper()
	args = append([]string{"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--log-format", "json", "--admin-token", adminToken}, args...)
	cfg, err := config.ParseServe(args, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	m := New(cfg, Options{Version: "test"})
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

const adminToken = "admin-token-of-the-serve-tests"

// metricSamples returns the samples (the lines that are not comments) of
// m's GET /metrics.
func metricSamples(t *testing.T, m *Main) []string {
	t.Helper()
	resp, err := http.Get(m.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	var samples []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			samples = append(samples, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return samples
}

// TestMetricsNodeLabel: on a shared store every metric of a node carries
// the label node="<its name>", hookd's own and the Go runtime's alike; on
// the embedded store no metric has a node label.
func TestMetricsNodeLabel(t *testing.T) {
	m := openMain(t, "--store", pgtest.Database(t), "--node-name", "edge-7")
	samples := metricSamples(t, m)
	hookd := 0
	for _, s := range samples {
		if !strings.Contains(s, `node="edge-7"`) {
			t.Errorf("a sample without the node label: %s", s)
		}
		if strings.HasPrefix(s, "hookd_") {
			hookd++
		}
	}
	if hookd == 0 || !strings.Contains(strings.Join(samples, "\n"), "go_goroutines{") {
		t.Errorf("got %d hookd_ samples and no go_goroutines, want both:\n%s", hookd, strings.Join(samples, "\n"))
	}

	single := openMain(t, "--node-name", "edge-8")
	for _, s := range metricSamples(t, single) {
		if strings.Contains(s, "node=") {
			t.Errorf("a node label on the embedded store: %s", s)
		}
	}
}

// TestNodeName: a node is named --node-name, or else <hostname>:<listen
// port>, as GET /admin/cluster shows; on the embedded store it is the one
// node: its janitor and exporter take no lock, its dispatcher no claims.
func TestNodeName(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ flag, want string }{{"", ""}, {"edge-1", "edge-1"}} {
		args := []string{"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--log-format", "json", "--admin-token", "admin-token-of-the-node-test"}
		if tc.flag != "" {
			args = append(args, "--node-name", tc.flag)
		}
		cfg, err := config.ParseServe(args, func(string) string { return "" }, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		m := New(cfg, Options{Version: "test"})
		if err := m.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := tc.want
		if want == "" {
			_, port, _ := net.SplitHostPort(m.ln.Addr().String())
			want = net.JoinHostPort(host, port)
		}
		req, _ := http.NewRequest(http.MethodGet, m.URL()+"/admin/cluster", nil)
		req.Header.Set("Authorization", "Bearer admin-token-of-the-node-test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got wire.Cluster
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || len(got.Nodes) != 1 || got.Nodes[0].Name != want || got.Nodes[0].ID != m.node.ID {
			t.Errorf("--node-name %q: got %+v (%v), want the node %s named %q", tc.flag, got, err, m.node.ID, want)
		}
		if m.janitorLock() != nil || m.exportQueue() != nil {
			t.Error("the embedded store's janitor takes a lock or its exporter a shared queue, want neither")
		}
		if _, claims := m.dispatchStore().(claimingStore); claims {
			t.Error("the embedded store's dispatcher claims its events, want the store itself")
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
