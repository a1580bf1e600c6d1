package main

import (
	"fmt"
	"io"
	"runtime"
)

const versionUsage = `Usage: hookd version

Prints hookd's version, the Go version it was built with and the platform.

Example:
  hookd version
`

func runVersion(args []string, stdout, stderr io.Writer) error {
	f := newFlags("version", stderr, versionUsage)
	if err := f.Parse(args); err != nil {
		if isHelp(err) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if f.NArg() > 0 {
		return usageErr(stderr, "version", "no arguments expected")
	}
	fmt.Fprintf(stdout, "hookd %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
