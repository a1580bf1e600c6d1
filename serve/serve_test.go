package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"hookd/store/bolt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hookd/config"
	"hookd/wire"
)

// TestClientRateOff: --client-rate 0 turns the API's limit off, which the
// API spells as a negative rate (its zero is the default).
func TestClientRateOff(t *testing.T) {
	for in, want := range map[float64]float64{0: -1, 0.5: 0.5, 100: 100} {
		if got := apiClientRate(in); got != want {
			t.Errorf("apiClientRate(%v): got %v, want %v", in, got, want)
		}
	}
}

func TestReadOrCreateToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), wire.AdminTokenFile)
	n := 0
	gen := func() (string, error) { n++; return "generated-" + string(rune('0'+n)), nil }
	tok, created, err := readOrCreateToken(path, gen)
	if err != nil || !created || tok != "generated-1" {
		t.Fatalf("first: got %q %v %v, want generated-1 created", tok, created, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("got mode %o, want 600", fi.Mode().Perm())
	}
	tok, created, err = readOrCreateToken(path, gen)
	if err != nil || created || tok != "generated-1" {
		t.Errorf("second: got %q %v %v, want generated-1 reused", tok, created, err)
	}
	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, created, _ = readOrCreateToken(path, gen); !created || tok != "generated-2" {
		t.Errorf("empty file: got %q %v, want a new token", tok, created)
	}
	if _, _, err := readOrCreateToken(filepath.Join(path, "sub", "x"), gen); err == nil {
		t.Error("unwritable path: got nil error, want one")
	}
}

func TestLogFormats(t *testing.T) {
	var js, con bytes.Buffer
	l := newLogger("json", "info", &js)
	l.Info().Str("k", "v").Msg("hello")
	l.Debug().Msg("hidden")
	var line map[string]any
	if err := json.Unmarshal(js.Bytes(), &line); err != nil || line["message"] != "hello" || line["k"] != "v" || line["level"] != "info" {
		t.Errorf("json: got %q (%v), want one JSON line", js.String(), err)
	}
	cl := newLogger("console", "info", &con)
	cl.Info().Str("k", "v").Msg("hello")
	if out := con.String(); json.Valid(con.Bytes()) || !strings.Contains(out, "hello") || !strings.Contains(out, "k=v") {
		t.Errorf("console: got %q, want a plain text line", out)
	}
}

// TestCloseAfterFailedOpen: an Open that fails half way (the port is
// taken) leaves nothing behind once Close returns: the store opens again.
func TestCloseAfterFailedOpen(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	cfg, err := config.ParseServe([]string{"--listen", taken.Addr().String(), "--data", dir, "--log-format", "json"}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	m := New(cfg, Options{Version: "test"})
	if err := m.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("got %v, want the listen error", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatalf("got %v reopening the store after Close, want it released", err)
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, wire.AdminTokenFile)); err != nil {
		t.Errorf("got %v, want the admin token generated before the listen failed", err)
	}
}
