package cli

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"hookd/envflag"
	"hookd/wire"
)

// cliRun runs one hookd command line in-process without environment and
// returns its output. Serve is not wired here: the end-to-end tests run it.
func cliRun(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = Program{Version: "test"}.Run(ctx, args, func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// usageCase is a command line the CLI refuses as a usage error.
type usageCase struct {
	args []string
	want string // on stderr
}

// checkUsageErrors runs each case and wants envflag.ErrUsage itself (the
// message is printed; main adds nothing), its text on stderr with one
// line pointing to --help, and not the whole usage.
func checkUsageErrors(t *testing.T, cases []usageCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, stderr, err := cliRun(t, t.Context(), tc.args...)
			if err != envflag.ErrUsage {
				t.Errorf("got error %v, want envflag.ErrUsage itself", err)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("got stderr %q, want %q in it", stderr, tc.want)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[1], "Run 'hookd ") || !strings.HasSuffix(lines[1], " --help' for usage.") {
				t.Errorf("got stderr %q, want the error and one line pointing to --help", stderr)
			}
			if strings.Contains(stderr, "Usage:") {
				t.Errorf("got stderr %q, want no usage text", stderr)
			}
		})
	}
}

func TestMissingRequiredFlagIsNamed(t *testing.T) {
	id := uuid.NewString()
	remote := []string{"--server", "http://127.0.0.1:1", "--admin-token", "x"}
	checkUsageErrors(t, []usageCase{
		{[]string{"keys", "rotate"}, "hookd keys rotate: --customer is required\n"},
		{[]string{"client", "create"}, "hookd client create: --customer is required\n"},
		{append([]string{"client", "revoke", "--customer", id}, remote...), "hookd client revoke: --client is required\n"},
		{[]string{"publish", "events.ndjson"}, "hookd publish: --customer is required\n"},
		{[]string{"export", "download", "--customer", id, "--job", id}, "hookd export download: --subscription is required\n"},
		{[]string{"keys", "rotate", "--customer", "acme"}, `hookd keys rotate: --customer must be a UUID, got "acme"`},
		{[]string{"publish", "--customer", "acme", "events.ndjson"}, `hookd publish: --customer must be a UUID, got "acme"`},
	})
}

func TestUnknownFlagIsReportedOnce(t *testing.T) {
	var cases []usageCase
	for _, cmd := range [][]string{{"client", "list"}, {"keys", "rotate"}, {"publish"}, {"backup"}, {"export", "download"}, {"version"}} {
		name := strings.Join(cmd, " ")
		cases = append(cases, usageCase{append(cmd, "--customre", "x"),
			"hookd " + name + ": flag provided but not defined: -customre\nRun 'hookd " + name + " --help' for usage.\n"})
	}
	checkUsageErrors(t, cases)
	// The message is on stderr once.
	_, stderr, _ := cliRun(t, t.Context(), "keys", "rotate", "--customre", "x")
	if n := strings.Count(stderr, "customre"); n != 1 {
		t.Errorf("got stderr %q naming the flag %d times, want once", stderr, n)
	}
}

func TestMissingSubcommandIsNamed(t *testing.T) {
	checkUsageErrors(t, []usageCase{
		{[]string{"keys"}, "hookd keys: missing the subcommand: rotate"},
		{[]string{"keys", "--customer", uuid.NewString()}, "hookd keys: missing the subcommand: rotate"},
		{[]string{"keys", "rotat"}, `hookd keys: unknown subcommand "rotat"; want rotate`},
		{[]string{"client"}, "hookd client: missing the subcommand: create, list or revoke"},
		{[]string{"client", "rename"}, `hookd client: unknown subcommand "rename"`},
		{[]string{"export"}, "hookd export: missing the subcommand: download"},
	})
	for _, cmd := range []string{"keys", "client", "export"} {
		_, stderr, err := cliRun(t, t.Context(), cmd, "--help")
		if err != nil || !strings.Contains(stderr, "Usage: hookd "+cmd) {
			t.Errorf("%s --help: got %v and stderr %q, want nil and the usage", cmd, err, stderr)
		}
	}
}

func TestHelpShowsShortFlags(t *testing.T) {
	_, stderr, err := cliRun(t, t.Context(), "export", "download", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if want := "\n  -o, --output  [HOOKD_OUTPUT]\n"; !strings.Contains(stderr, want) {
		t.Errorf("got help %q, want %q", stderr, want)
	}
	if strings.Contains(stderr, "--o ") {
		t.Errorf("got help %q, want -o shown with one dash, beside --output", stderr)
	}
}

func TestPublishHelpStatesBatchLimit(t *testing.T) {
	_, stderr, err := cliRun(t, t.Context(), "publish", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if want := "at most " + strconv.Itoa(wire.MaxIntakeEvents) + ": the intake's limit"; !strings.Contains(stderr, want) {
		t.Errorf("got help %q, want %q", stderr, want)
	}
}
