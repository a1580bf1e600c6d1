package config

// Tests of the serve configuration: flags, HOOKD_* fallbacks, validation,
// help and the redacted log form.

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"hookd/envflag"
	"hookd/jobs"
)

// envOf returns a getenv func over m.
func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestServeDefaults(t *testing.T) {
	var stderr bytes.Buffer
	c, err := ParseServe(nil, envOf(nil), &stderr)
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
		{"disk-reserve", c.DiskReserve, "auto"},
		{"max-event-size", c.MaxEventSize, 64 << 10},
		{"intake-memory", c.IntakeMemory, 256 << 20},
		{"node-name", c.NodeName, ""}, // <hostname>:<listen port> once listening
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
		"HOOKD_NODE_NAME":          "hookd-2.eu",
	}
	c, err := ParseServe(nil, envOf(env), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.Listen, c.Data, c.PublicURL, c.BlobURL, c.AdminToken, c.Dev, c.LogFormat, c.LogLevel, c.TokenTTL, c.SubscriptionLimit, c.Jitter, c.ExportScope, c.NodeName}
	want := []any{"0.0.0.0:9090", "/var/lib/hookd", "https://hooks.example.com", "s3://bucket?region=eu-west-1", "env-admin-token-0123456789", true, "json", "debug", 30 * time.Minute, 7, 0.5, "customer", "hookd-2.eu"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("field %d: got %v, want %v", i, got[i], want[i])
		}
	}
	// The blob URL default follows the data directory from the environment.
	c, err = ParseServe(nil, envOf(map[string]string{"HOOKD_DATA": "/srv/hookd"}), &bytes.Buffer{})
	if err != nil || c.BlobURL != "file:///srv/hookd/exports" {
		t.Errorf("got blob URL %q (%v), want file:///srv/hookd/exports", c.BlobURL, err)
	}
	// Flags win over the environment.
	c, err = ParseServe([]string{"--listen", "127.0.0.1:7070", "--dev=false", "--token-ttl", "2m"}, envOf(env), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7070" || c.Dev || c.TokenTTL != 2*time.Minute || c.Data != "/var/lib/hookd" {
		t.Errorf("got listen %s dev %v ttl %s data %s, want the flags over the environment", c.Listen, c.Dev, c.TokenTTL, c.Data)
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
		{"disk reserve not a size", []string{"--disk-reserve", "lots"}, nil, "--disk-reserve"},
		{"disk reserve unit", nil, map[string]string{"HOOKD_DISK_RESERVE": "5 parsecs"}, "--disk-reserve"},
		{"tiny max event size", nil, map[string]string{"HOOKD_MAX_EVENT_SIZE": "10"}, "--max-event-size"},
		{"tiny intake memory", []string{"--intake-memory", "1000"}, nil, "--intake-memory"},
		{"long node name", []string{"--node-name", strings.Repeat("n", 101)}, nil, "--node-name"},
		{"node name with a newline", nil, map[string]string{"HOOKD_NODE_NAME": "a\nb"}, "--node-name"},
		{"arguments", []string{"extra"}, nil, "no arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := ParseServe(tc.args, envOf(tc.env), &stderr)
			if err == nil {
				t.Fatal("got nil error, want the configuration refused")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %q, want it to name %q", err, tc.want)
			}
		})
	}
	// Every problem is reported at once.
	_, err := ParseServe([]string{"--log-format", "xml", "--token-ttl", "0s", "--subscription-limit", "0"}, envOf(nil), &bytes.Buffer{})
	for _, want := range []string{"--log-format", "--token-ttl", "--subscription-limit"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want every invalid field, %s among them", err, want)
		}
	}
}

func TestServeHelp(t *testing.T) {
	var stderr bytes.Buffer
	_, err := ParseServe([]string{"--help"}, envOf(nil), &stderr)
	if !envflag.IsHelp(err) {
		t.Fatalf("got %v, want the help error", err)
	}
	help := stderr.String()
	// Every flag the issue names is explained with its variable.
	for _, name := range []string{"listen", "data", "public-url", "blob-url", "admin-token", "dev", "log-format", "token-ttl", "subscription-limit"} {
		re := regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(name) + `  \[` + envflag.Name(name) + `\]\n      \S.{10,}`)
		if !re.MatchString(help) {
			t.Errorf("got help without --%s [%s] and an explanation:\n%s", name, envflag.Name(name), help)
		}
	}
	// Every flag listed has its variable, and the defaults are shown.
	flags := regexp.MustCompile(`(?m)^  --([a-z-]+)  \[([A-Z_]+)\]$`).FindAllStringSubmatch(help, -1)
	if len(flags) < 15 {
		t.Errorf("got %d flags in the help, want every serve flag", len(flags))
	}
	for _, f := range flags {
		if f[2] != envflag.Name(f[1]) {
			t.Errorf("got --%s with %s, want %s", f[1], f[2], envflag.Name(f[1]))
		}
	}
	for _, want := range []string{"127.0.0.1:8080", "./data", "file://<data>/exports", "admin.token", "json or console", "Example"} {
		if !strings.Contains(help, want) {
			t.Errorf("got help without %q", want)
		}
	}
}

func TestRedactedConfig(t *testing.T) {
	c := Config{AdminToken: "super-secret-admin-token", BlobURL: "s3://key:secret@bucket?region=x", Listen: ":1",
		Store: "postgres://hookd:db-password@db.internal/hookd?sslmode=require"}
	red := c.Redacted()
	all, _ := json.Marshal(red)
	for _, secret := range []string{"super-secret-admin-token", "secret@", "key:", "db-password"} {
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("got %s, want %q redacted", all, secret)
		}
	}
	if red["adminToken"] != "REDACTED" || red["listen"] != ":1" {
		t.Errorf("got %v, want the token redacted and the rest shown", red)
	}
	if want := "postgres://hookd:REDACTED@db.internal/hookd?sslmode=require"; red["store"] != want {
		t.Errorf("store = %q, want %q", red["store"], want)
	}
	c.Store = "postgres:///hookd?host=/run/postgresql&password=db-password"
	if got := c.Redacted()["store"]; strings.Contains(got, "db-password") || !strings.Contains(got, "host=") {
		t.Errorf("store = %q, want the password parameter redacted and the rest shown", got)
	}
}

// TestStoreURL: --store takes nothing (the embedded store) or a
// postgres:// URL, and refuses anything else with a clear error.
func TestStoreURL(t *testing.T) {
	for _, tc := range []struct {
		store string
		ok    bool
	}{
		{"", true},
		{"postgres://u:p@localhost/hookd", true},
		{"postgresql:///hookd?host=/tmp", true},
		{"mysql://localhost/hookd", false},
		{"/var/lib/hookd", false},
	} {
		_, err := ParseServe([]string{"--store", tc.store}, func(string) string { return "" }, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("--store %q: err = %v, want ok %v", tc.store, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--store") {
			t.Errorf("--store %q: error %q does not name the flag", tc.store, err)
		}
	}
}

// TestExportQueueConfig: the scope is per customer by default, the
// appliance scope (which let one customer's export refuse another's) is
// refused with a clear message, and --export-writers and --export-lease
// are bounded.
func TestExportQueueConfig(t *testing.T) {
	c, err := ParseServe(nil, envOf(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.ExportScope != "customer" || c.ExportWriters != 1 || c.ExportLease != jobs.DefaultExportLease {
		t.Errorf("defaults: got scope %q, %d writers and a lease of %v, want customer, 1 and %v", c.ExportScope, c.ExportWriters, c.ExportLease, jobs.DefaultExportLease)
	}
	c, err = ParseServe(nil, envOf(map[string]string{"HOOKD_EXPORT_WRITERS": "3"}), &bytes.Buffer{})
	if err != nil || c.ExportWriters != 3 {
		t.Errorf("HOOKD_EXPORT_WRITERS=3: got %d, %v", c.ExportWriters, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--export-scope", "appliance"}, "--export-scope: appliance is no longer a scope"},
		{[]string{"--export-writers", "0"}, "--export-writers: must be 1 to 64"},
		{[]string{"--export-writers", "65"}, "--export-writers: must be 1 to 64"},
		{[]string{"--export-lease", "2s"}, "--export-lease: must be at least 3s"},
	} {
		if _, err := ParseServe(tc.args, envOf(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
}
