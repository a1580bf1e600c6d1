package cli

import (
	"bytes"
	"context"
	"testing"
)

// cliRun runs one hookd command line in-process without environment and
// returns its output. Serve is not wired here: the end-to-end tests run it.
func cliRun(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = Program{Version: "test"}.Run(ctx, args, func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), err
}
