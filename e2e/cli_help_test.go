package e2e

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

// cliRun runs one hookd command line in-process without environment and
// returns its output.
func cliRun(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(ctx, args, func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestEveryCommandHasHelpWithExample(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--help"},
		{"client", "--help"},
		{"client", "create", "--help"},
		{"keys", "--help"},
		{"keys", "rotate", "--help"},
		{"publish", "--help"},
		{"replay", "--help"},
		{"backup", "--help"},
		{"export", "--help"},
		{"export", "download", "--help"},
		{"version", "--help"},
		{"--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, err := cliRun(t, t.Context(), args...)
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			out := stdout + stderr
			if !strings.Contains(out, "Usage: hookd") {
				t.Errorf("got help %q, want a usage line", out)
			}
			if args[0] != "--help" && !strings.Contains(out, "Example") {
				t.Errorf("got help %q, want an example", out)
			}
		})
	}
}

func TestMainUsageListsCommands(t *testing.T) {
	stdout, _, err := cliRun(t, t.Context(), "help")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"serve", "client", "keys", "publish", "replay", "backup", "export", "version"} {
		if !strings.Contains(stdout, "\n  "+cmd+" ") {
			t.Errorf("got usage %q, want command %s listed", stdout, cmd)
		}
	}
}

func TestVersionPrintsGoVersion(t *testing.T) {
	stdout, _, err := cliRun(t, t.Context(), "version")
	if err != nil {
		t.Fatal(err)
	}
	if want := "hookd " + version + " (" + runtime.Version(); !strings.HasPrefix(stdout, want) {
		t.Errorf("got %q, want prefix %q", stdout, want)
	}
}
