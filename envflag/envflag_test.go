package envflag

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseFallsBackToEnvironment(t *testing.T) {
	var name, out string
	var n int
	var d time.Duration
	f := New("x", &bytes.Buffer{}, "Usage: x\n")
	f.String(&name, "blob-url", "def", "")
	f.Short(&out, "o", "output")
	f.Int(&n, "batch", 1, "")
	f.Duration(&d, "token-ttl", time.Hour, "")
	env := map[string]string{"HOOKD_BLOB_URL": "env", "HOOKD_OUTPUT": "file", "HOOKD_BATCH": "7", "HOOKD_TOKEN_TTL": "2m"}
	pos, err := f.ParseInterspersed([]string{"a", "--batch", "9", "b"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if name != "env" || out != "file" || n != 9 || d != 2*time.Minute || strings.Join(pos, ",") != "a,b" {
		t.Errorf("got %q %q %d %s %q, want env, file, 9 (the flag over the variable), 2m and a,b", name, out, n, d, pos)
	}
}

func TestParseReportsEveryBadVariable(t *testing.T) {
	var n int
	var d time.Duration
	f := New("x", &bytes.Buffer{}, "Usage: x\n")
	f.Int(&n, "batch", 1, "")
	f.Duration(&d, "token-ttl", time.Hour, "")
	err := f.Parse(nil, func(k string) string { return "bad" })
	if err == nil || !strings.Contains(err.Error(), "HOOKD_BATCH") || !strings.Contains(err.Error(), "HOOKD_TOKEN_TTL") {
		t.Errorf("got %v, want both variables named", err)
	}
}

func TestHelpListsVariables(t *testing.T) {
	var stderr bytes.Buffer
	var s string
	f := New("x", &stderr, "Usage: x\n")
	f.String(&s, "public-url", "http://a", "base URL")
	err := f.Parse([]string{"--help"}, func(string) string { return "" })
	if !IsHelp(err) || errors.Is(err, ErrUsage) {
		t.Fatalf("got %v, want the help error", err)
	}
	if want := "  --public-url  [HOOKD_PUBLIC_URL]\n      base URL (default http://a)\n"; !strings.Contains(stderr.String(), want) {
		t.Errorf("got help %q, want %q", stderr.String(), want)
	}
}
