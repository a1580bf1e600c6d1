package main

// Tests of the serve configuration (flags, HOOKD_* fallbacks, validation,
// help) and of the process's life: start from the environment, a second
// process on the same data directory, shutdown on a signal.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"hookd/store"
)

// envOf returns a getenv func over m.
func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestServeDefaults(t *testing.T) {
	var stderr bytes.Buffer
	c, err := parseServe(nil, envOf(nil), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("data/exports")
	// The fields of the base configuration; other components check theirs.
	tests := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, "127.0.0.1:8080"},
		{"data", c.Data, "./data"},
		{"public-url", c.PublicURL, ""}, // http://<listen address> once listening
		{"blob-url", c.BlobURL, "file://" + abs},
		{"admin-token", c.AdminToken, ""}, // generated into <data>/admin.token
		{"dev", c.Dev, false},
		{"log-format", c.LogFormat, "console"},
		{"log-level", c.LogLevel, "info"},
		{"token-ttl", c.TokenTTL, time.Hour},
		{"subscription-limit", c.SubscriptionLimit, 100},
		{"shutdown-grace", c.ShutdownGrace, defaultShutdownGrace},
		{"client-rate", c.ClientRate, 100.0},
		{"client-burst", c.ClientBurst, 200},
		{"max-event-size", c.MaxEventSize, 64 << 10},
		{"intake-memory", c.IntakeMemory, 256 << 20},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("--%s: got default %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestServeEnvFallback(t *testing.T) {
	env := map[string]string{
		"HOOKD_LISTEN":             "0.0.0.0:9090",
		"HOOKD_DATA":               "/var/lib/hookd",
		"HOOKD_PUBLIC_URL":         "https://hooks.example.com",
		"HOOKD_BLOB_URL":           "s3://bucket?region=eu-west-1",
		"HOOKD_ADMIN_TOKEN":        "env-admin-token-0123456789",
		"HOOKD_DEV":                "true",
		"HOOKD_LOG_FORMAT":         "json",
		"HOOKD_LOG_LEVEL":          "debug",
		"HOOKD_TOKEN_TTL":          "30m",
		"HOOKD_SUBSCRIPTION_LIMIT": "7",
		"HOOKD_RETRY_JITTER":       "0.5",
		"HOOKD_EXPORT_SCOPE":       "customer",
	}
	c, err := parseServe(nil, envOf(env), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.Listen, c.Data, c.PublicURL, c.BlobURL, c.AdminToken, c.Dev, c.LogFormat, c.LogLevel, c.TokenTTL, c.SubscriptionLimit, c.Jitter, c.ExportScope}
	want := []any{"0.0.0.0:9090", "/var/lib/hookd", "https://hooks.example.com", "s3://bucket?region=eu-west-1", "env-admin-token-0123456789", true, "json", "debug", 30 * time.Minute, 7, 0.5, "customer"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("field %d: got %v, want %v", i, got[i], want[i])
		}
	}
	// The blob URL default follows the data directory from the environment.
	c, err = parseServe(nil, envOf(map[string]string{"HOOKD_DATA": "/srv/hookd"}), &bytes.Buffer{})
	if err != nil || c.BlobURL != "file:///srv/hookd/exports" {
		t.Errorf("got blob URL %q (%v), want file:///srv/hookd/exports", c.BlobURL, err)
	}
	// Flags win over the environment.
	c, err = parseServe([]string{"--listen", "127.0.0.1:7070", "--dev=false", "--token-ttl", "2m"}, envOf(env), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7070" || c.Dev || c.TokenTTL != 2*time.Minute || c.Data != "/var/lib/hookd" {
		t.Errorf("got listen %s dev %v ttl %s data %s, want the flags over the environment", c.Listen, c.Dev, c.TokenTTL, c.Data)
	}
}

// TestClientRateOff: --client-rate 0 turns the API's limit off, which the
// API spells as a negative rate (its zero is the default).
func TestClientRateOff(t *testing.T) {
	for in, want := range map[float64]float64{0: -1, 0.5: 0.5, 100: 100} {
		if got := apiClientRate(in); got != want {
			t.Errorf("apiClientRate(%v): got %v, want %v", in, got, want)
		}
	}
}

func TestServeInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error
	}{
		{"unknown flag", []string{"--lisen", ":1"}, nil, "lisen"},
		{"bad duration", []string{"--token-ttl", "soon"}, nil, "token-ttl"},
		{"bad env duration", nil, map[string]string{"HOOKD_TOKEN_TTL": "soon"}, "HOOKD_TOKEN_TTL"},
		{"bad env bool", nil, map[string]string{"HOOKD_DEV": "maybe"}, "HOOKD_DEV"},
		{"bad env int", nil, map[string]string{"HOOKD_SUBSCRIPTION_LIMIT": "many"}, "HOOKD_SUBSCRIPTION_LIMIT"},
		{"empty listen", []string{"--listen", ""}, nil, "--listen"},
		{"listen without port", []string{"--listen", "localhost"}, nil, "--listen"},
		{"empty data", []string{"--data", ""}, nil, "--data"},
		{"public url not http", []string{"--public-url", "ftp://x"}, nil, "--public-url"},
		{"public url relative", []string{"--public-url", "/hooks"}, nil, "--public-url"},
		{"blob url scheme", []string{"--blob-url", "gs://bucket"}, nil, "--blob-url"},
		{"short admin token", []string{"--admin-token", "short"}, nil, "--admin-token"},
		{"log format", []string{"--log-format", "xml"}, nil, "--log-format"},
		{"log level", []string{"--log-level", "loud"}, nil, "--log-level"},
		{"zero token ttl", []string{"--token-ttl", "0s"}, nil, "--token-ttl"},
		{"negative retention", []string{"--retention", "-1h"}, nil, "--retention"},
		{"zero subscription limit", []string{"--subscription-limit", "0"}, nil, "--subscription-limit"},
		{"jitter above 1", []string{"--retry-jitter", "1.5"}, nil, "--retry-jitter"},
		{"export scope", []string{"--export-scope", "galaxy"}, nil, "--export-scope"},
		{"export encoding", []string{"--export-encoding", "rar"}, nil, "--export-encoding"},
		{"negative client rate", []string{"--client-rate", "-1"}, nil, "--client-rate"},
		{"zero client burst", nil, map[string]string{"HOOKD_CLIENT_BURST": "0"}, "--client-burst"},
		{"tiny max event size", nil, map[string]string{"HOOKD_MAX_EVENT_SIZE": "10"}, "--max-event-size"},
		{"tiny intake memory", []string{"--intake-memory", "1000"}, nil, "--intake-memory"},
		{"arguments", []string{"extra"}, nil, "no arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseServe(tc.args, envOf(tc.env), &stderr)
			if err == nil {
				t.Fatal("got nil error, want the configuration refused")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %q, want it to name %q", err, tc.want)
			}
		})
	}
	// Every problem is reported at once.
	_, err := parseServe([]string{"--log-format", "xml", "--token-ttl", "0s", "--subscription-limit", "0"}, envOf(nil), &bytes.Buffer{})
	for _, want := range []string{"--log-format", "--token-ttl", "--subscription-limit"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want every invalid field, %s among them", err, want)
		}
	}
	// run refuses them as a usage error before touching the data directory.
	dir := filepath.Join(t.TempDir(), "never")
	_, _, err = runCLI(t, nil, "serve", "--data", dir, "--log-format", "xml")
	if !errors.Is(err, errUsage) {
		t.Errorf("got %v, want a usage error", err)
	}
	if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
		t.Errorf("got the data directory created (%v), want nothing touched", statErr)
	}
}

func TestServeHelp(t *testing.T) {
	var stderr bytes.Buffer
	_, err := parseServe([]string{"--help"}, envOf(nil), &stderr)
	if !isHelp(err) {
		t.Fatalf("got %v, want the help error", err)
	}
	help := stderr.String()
	// Every flag the issue names is explained with its variable.
	for _, name := range []string{"listen", "data", "public-url", "blob-url", "admin-token", "dev", "log-format", "token-ttl", "subscription-limit"} {
		re := regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(name) + `  \[` + envName(name) + `\]\n      \S.{10,}`)
		if !re.MatchString(help) {
			t.Errorf("got help without --%s [%s] and an explanation:\n%s", name, envName(name), help)
		}
	}
	// Every flag listed has its variable, and the defaults are shown.
	flags := regexp.MustCompile(`(?m)^  --([a-z-]+)  \[([A-Z_]+)\]$`).FindAllStringSubmatch(help, -1)
	if len(flags) < 15 {
		t.Errorf("got %d flags in the help, want every serve flag", len(flags))
	}
	for _, f := range flags {
		if f[2] != envName(f[1]) {
			t.Errorf("got --%s with %s, want %s", f[1], f[2], envName(f[1]))
		}
	}
	for _, want := range []string{"127.0.0.1:8080", "./data", "file://<data>/exports", "admin.token", "json or console", "Example"} {
		if !strings.Contains(help, want) {
			t.Errorf("got help without %q", want)
		}
	}
}

func TestRedactedConfig(t *testing.T) {
	c := Config{AdminToken: "super-secret-admin-token", BlobURL: "s3://key:secret@bucket?region=x", Listen: ":1"}
	red := c.redacted()
	all, _ := json.Marshal(red)
	for _, secret := range []string{"super-secret-admin-token", "secret@", "key:"} {
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("got %s, want %q redacted", all, secret)
		}
	}
	if red["adminToken"] != "REDACTED" || red["listen"] != ":1" {
		t.Errorf("got %v, want the token redacted and the rest shown", red)
	}
}

func TestReadOrCreateToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), adminTokenFile)
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

// waitURL waits for a serving hookd to record its URL in dir.
func waitURL(t *testing.T, dir string, exited <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("hookd exited during start: %v", err)
		default:
		}
		if b, err := os.ReadFile(filepath.Join(dir, urlFile)); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("hookd did not record its URL within 15s")
	return ""
}

// TestServeFromEnvironment starts hookd configured only through HOOKD_*
// variables, starts a second one on the same data directory (refused
// within seconds), and stops the first by cancelling its context.
func TestServeFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"HOOKD_LISTEN": "127.0.0.1:0", "HOOKD_DATA": dir, "HOOKD_LOG_FORMAT": "json", "HOOKD_LOG_LEVEL": "info", "HOOKD_SUBSCRIPTION_LIMIT": "5"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exited := make(chan error, 1)
	go func() { exited <- run(ctx, []string{"serve"}, envOf(env), &stdout, &stderr) }()
	base := waitURL(t, dir, exited)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d, want 200", p, resp.StatusCode)
		}
	}
	if !strings.Contains(stderr.String(), `"subscriptionLimit":"5"`) || !strings.Contains(stderr.String(), `"data":"`+dir+`"`) {
		t.Errorf("got log %s, want the effective configuration from the environment", stderr.String())
	}

	t.Run("second serve on the same data directory", func(t *testing.T) {
		start := time.Now()
		var errOut bytes.Buffer
		err := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--data", dir, "--log-format", "json"}, envOf(nil), &bytes.Buffer{}, &errOut)
		if took := time.Since(start); took > 6*time.Second {
			t.Errorf("got the refusal after %s, want it within seconds", took)
		}
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("got %v, want ErrLocked", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "another hookd") || !strings.Contains(msg, dir) {
			t.Errorf("got %q, want a message naming the data directory and another hookd", msg)
		}
		// The first one still serves.
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("first hookd after the refused second: %v", err)
		}
		resp.Body.Close()
	})

	cancel()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("shutdown: got %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("hookd did not stop within 15s of its context ending")
	}
	if !strings.Contains(stderr.String(), `"stopped"`) {
		t.Errorf("got log %s, want a stopped line", stderr.String())
	}
}

// TestSignalShutdown sends SIGTERM to a hookd process: it exits 0 after a
// clean shutdown.
func TestSignalShutdown(t *testing.T) {
	h := startProcess(t, t.TempDir(), "--log-level", "info")
	h.mustCall(http.StatusOK, http.MethodGet, "/healthz", "", nil, nil)
	if err := h.proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	pid := h.proc.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("hookd still runs 10s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.Kill() // reaps; the process is already gone
	if code := h.proc.ProcessState.ExitCode(); code != 0 {
		t.Errorf("got exit code %d, want 0; stderr %s", code, h.Stderr.String())
	}
	if logs := h.Stderr.String(); !strings.Contains(logs, `"shutting down"`) || !strings.Contains(logs, `"stopped"`) {
		t.Errorf("got log %s, want shutting down and stopped", logs)
	}
	if _, err := os.Stat(filepath.Join(h.Data, urlFile)); !os.IsNotExist(err) {
		t.Errorf("got %s left after shutdown (%v), want it removed", urlFile, err)
	}
}
