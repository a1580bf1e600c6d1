package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"testing"

	"hookd/config"
	"hookd/wire"
)

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
