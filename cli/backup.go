package cli

import (
	"context"
	"fmt"
	"hookd/store/bolt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"hookd/envflag"
)

const backupUsage = `Usage: hookd backup [flags] FILE

Writes a consistent copy of the store of a running hookd to FILE while it
keeps serving: the server streams bbolt's hot backup of <data>/hookd.db
through GET /admin/backup (admin token). The copy is downloaded to FILE.tmp,
synced to disk, checked with bbolt's consistency check and only then renamed
to FILE. An existing FILE is left alone unless --force is given.

To restore, stop hookd, copy FILE to <data>/hookd.db and start hookd.

Examples:
  hookd backup /var/backups/hookd-$(date +%F).db
  hookd backup --server http://10.0.0.5:8080 --admin-token "$ADMIN_TOKEN" --force hookd-latest.db
`

func runBackup(ctx context.Context, ua string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var a adminFlags
	var force bool
	f := envflag.New("backup", stderr, backupUsage)
	a.register(f)
	f.Bool(&force, "force", false, "overwrite FILE if it exists")
	files, err := f.ParseInterspersed(args, getenv)
	if err != nil {
		return parseErr(stderr, "backup", err)
	}
	if len(files) != 1 {
		return usageErr(stderr, "backup", "give one FILE, got %d arguments", len(files))
	}
	file := files[0]
	if !force {
		if _, err := os.Lstat(file); err == nil {
			return fmt.Errorf("%s exists; give --force to overwrite it", file)
		}
	}
	c, err := a.client(ua)
	if err != nil {
		return err
	}
	n, err := downloadBackup(ctx, c, file, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s: %s (%d bytes), bbolt consistency check passed\n", file, humanBytes(n), n)
	return nil
}

// downloadBackup fetches the server's backup into file (through file.tmp)
// and checks it; it returns the copy's size.
func downloadBackup(ctx context.Context, c *adminClient, file string, stderr io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.server+"/admin/backup", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := streamClient().Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach hookd at %s: %w (a stopped hookd needs no backup command: copy <data>/%s)", c.server, err, bolt.FileName)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, responseError(resp)
	}
	tmp := file + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	fail := func(err error) (int64, error) {
		out.Close()
		os.Remove(tmp)
		return 0, err
	}
	prog := newProgress(stderr, "backup", max(resp.ContentLength, 0), true)
	n, err := io.Copy(io.MultiWriter(out, prog), resp.Body)
	prog.finish()
	if err != nil {
		return fail(fmt.Errorf("backup interrupted after %d bytes: %w", n, err))
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fail(fmt.Errorf("backup cut short: got %d bytes, want %d", n, resp.ContentLength))
	}
	if err := out.Sync(); err != nil {
		return fail(err)
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return 0, err
	}
	if err := bolt.CheckFile(tmp); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("the downloaded copy is not usable: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return n, syncDir(filepath.Dir(file))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// streamClient is the HTTP client of downloads and uploads: no overall
// timeout (a large file takes as long as it takes), but bounded waits for
// the connection and the response headers. Answers are never decompressed
// behind the caller's back.
func streamClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	t.DisableCompression = true
	return &http.Client{Transport: t}
}
