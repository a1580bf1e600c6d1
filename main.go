// Command hookd is a single-binary webhooks service compatible with the
// Identity Cloud "Webhooks v3" API: customers subscribe listener endpoints
// to entity events, hookd signs each notification as a Security Event Token
// and delivers it with retries, keeps every event for seven days, and exports
// failed events as NDJSON files to a local directory or S3.
//
// main only wires: the command line goes to package cli, which runs the
// commands that call a running hookd; hookd serve reads its flags and
// environment into one config.Config, then opens, runs and closes a
// serve.Main in that order. The first SIGINT or SIGTERM starts the graceful
// shutdown; a second one ends the process at once.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"hookd/cli"
	"hookd/config"
	"hookd/envflag"
	"hookd/serve"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The first SIGINT or SIGTERM ends ctx: the graceful shutdown. A
	// second one ends the process at once, by that signal's default
	// action, whatever the shutdown is doing.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sigs
		cancel()
		sig := <-sigs
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
	}()
	program := cli.Program{Version: version, Serve: runServe}
	err := program.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	cancel()
	if errors.Is(err, envflag.ErrUsage) {
		if err != envflag.ErrUsage {
			fmt.Fprintln(os.Stderr, "hookd:", err)
		}
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hookd:", err)
		os.Exit(1)
	}
}

// runServe is hookd serve: flags and environment into one config, then
// open, run until ctx ends, and close.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.ParseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	m := serve.New(cfg, serve.Options{Version: version, Stdout: stdout, Stderr: stderr, Getenv: getenv})
	if err = m.Open(ctx); err == nil {
		err = m.Run(ctx)
	}
	return errors.Join(err, m.Close())
}
