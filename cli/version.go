package cli

import (
	"fmt"
	"io"
	"runtime"

	"hookd/envflag"
)

const versionUsage = `Usage: hookd version

Prints hookd's version, the Go version it was built with and the platform.

Example:
  hookd version
`

func runVersion(version string, args []string, stdout, stderr io.Writer) error {
	f := envflag.New("version", stderr, versionUsage)
	if err := f.Parse(args, func(string) string { return "" }); err != nil {
		return parseErr(stderr, "version", err)
	}
	if f.NArg() > 0 {
		return usageErr(stderr, "version", "no arguments expected")
	}
	fmt.Fprintf(stdout, "hookd %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
