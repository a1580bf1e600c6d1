// Package cli is hookd's command line: it dispatches a command line to
// serve (supplied by main, so that this package never pulls in the server)
// or to one of the commands that call a running hookd over HTTP: client,
// keys, publish, replay, backup and export download, and version.
//
// The commands talk to the server through a small HTTP client and read
// its answers as the wire package's types, which the server writes; error
// answers are wire.Problem values, rendered from their fields.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"

	"hookd/envflag"
)

// Command runs one command with its arguments (after the command's name).
type Command func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Program is the hookd command line.
type Program struct {
	// Version is hookd's version, printed by hookd version and sent in
	// the User-Agent of the commands' requests.
	Version string
	// Serve is hookd serve.
	Serve Command
}

const mainUsage = `hookd: a webhooks service (Identity Cloud Webhooks v3 compatible).

Usage: hookd <command> [flags]

Commands:
  serve      run the service
  client     create, list and revoke customers' API clients
  keys       rotate a customer's signing keys
  publish    send an NDJSON file of events to the intake
  replay     send an export file's events to a subscription again
  backup     write a consistent copy of the store of a running hookd
  export     download an export file and verify its ETag
  version    print the version

Run 'hookd <command> --help' for a command's flags and an example.
`

// Run runs one command line (without the program name) with the
// environment getenv and the standard output and error. A command line
// that cannot be parsed is an error wrapping envflag.ErrUsage; --help
// prints the usage and returns nil.
func (p Program) Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return envflag.ErrUsage
	}
	ua := "hookd/" + p.Version
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		if p.Serve == nil {
			return errors.New("this program has no serve command")
		}
		err = p.Serve(ctx, rest, getenv, stdout, stderr)
	case "client":
		err = runClient(ctx, ua, rest, getenv, stdout, stderr)
	case "keys":
		err = runKeys(ctx, ua, rest, getenv, stdout, stderr)
	case "publish":
		err = runPublish(ctx, ua, rest, getenv, stdout, stderr)
	case "replay":
		err = runReplay(ctx, ua, rest, getenv, stdout, stderr)
	case "backup":
		err = runBackup(ctx, ua, rest, getenv, stdout, stderr)
	case "export":
		err = runExport(ctx, ua, rest, getenv, stdout, stderr)
	case "version", "--version":
		err = runVersion(p.Version, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, mainUsage)
	default:
		fmt.Fprintf(stderr, "hookd: unknown command %q\n\n%s", cmd, mainUsage)
		return envflag.ErrUsage
	}
	if envflag.IsHelp(err) {
		return nil
	}
	return err
}

// usageErr reports a bad command line on stderr (main prints nothing for
// usage errors) and returns it as an ErrUsage.
func usageErr(stderr io.Writer, cmd, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(stderr, "hookd %s: %s\nRun 'hookd %s --help' for usage.\n", cmd, msg, cmd)
	return envflag.ErrUsage // the message is printed; main adds nothing
}

// parseErr reports an error of a command's flag parsing: nil after
// --help (the usage is printed), else a usage error.
func parseErr(stderr io.Writer, cmd string, err error) error {
	if envflag.IsHelp(err) {
		return nil
	}
	return usageErr(stderr, cmd, "%v", err)
}

// uuidFlag parses the value of the required flag --name, a UUID.
func uuidFlag(stderr io.Writer, cmd, name, raw string) (uuid.UUID, error) {
	if raw == "" {
		return uuid.UUID{}, usageErr(stderr, cmd, "--%s is required", name)
	}
	id, err := uuid.Parse(raw)
	if err != nil {
		return uuid.UUID{}, usageErr(stderr, cmd, "--%s must be a UUID, got %q", name, raw)
	}
	return id, nil
}

// subcommandErr reports a missing or unknown subcommand of cmd, whose
// subcommands are want.
func subcommandErr(stderr io.Writer, cmd string, args []string, want string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageErr(stderr, cmd, "missing the subcommand: %s", want)
	}
	return usageErr(stderr, cmd, "unknown subcommand %q; want %s", args[0], want)
}

// isHelp reports whether args asks for the help of a command with
// subcommands.
func isHelp(args []string) bool {
	return len(args) > 0 && (args[0] == "-h" || args[0] == "--help")
}
