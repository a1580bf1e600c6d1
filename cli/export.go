package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"hookd/envflag"
	"hookd/wire"
)

const exportUsage = `Usage: hookd export download --customer <uuid> --subscription <uuid> --job <uuid> [flags]

Downloads the file of a completed bulk export of failed events through the
customer API (GET /{customerId}/webhooks/subscriptions/{sid}/exports/{jobId}/download),
as a customer would: with an access token got from the client credentials
(--client-id and --client-secret; prefer the HOOKD_CLIENT_ID and
HOOKD_CLIENT_SECRET variables, which stay out of the process list), or with
--token. The file is written to FILE.part with progress on stderr while its
SHA-256 is computed, then compared to the download's strong ETag (the quoted
hex SHA-256 of the file): on a match FILE.part becomes FILE; on a mismatch it
is deleted and the command fails. FILE defaults to the name the server gives
in Content-Disposition. An interrupted download keeps FILE.part: run the same
command with --resume to continue it (Range with If-Range: a changed file
starts over). Compressed export files (.ndjson.gz, .ndjson.zst) are saved as
stored, since the ETag covers the stored bytes.

Examples:
  export HOOKD_CLIENT_ID=3f0c... HOOKD_CLIENT_SECRET=...
  hookd export download --server https://hooks.example.com \
      --customer 9bc867ed-1f10-420f-8d90-398fde4e4779 \
      --subscription e26925c7-ca17-4b82-8530-e43158c2d63a \
      --job a22c9604-7b27-464f-bff5-83ba229323af
  hookd export download ... -o failed.ndjson --resume
`

// exportDownload is one hookd export download invocation.
type exportDownload struct {
	server                  string
	customer, sub, job      uuid.UUID
	clientID, secret, token string
	out                     string // FILE; "" takes the server's name
	resume, force           bool
	userAgent               string
	http                    *http.Client
	stderr                  io.Writer
}

func runExport(ctx context.Context, ua string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if isHelp(args) {
		fmt.Fprint(stderr, exportUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "download" {
		return subcommandErr(stderr, "export", args, "download")
	}
	var server, data, customer, sub, job string
	d := exportDownload{http: streamClient(), stderr: stderr, userAgent: ua}
	f := envflag.New("export download", stderr, exportUsage)
	f.String(&server, "server", "", "base URL of hookd (default: the URL recorded in <data>/hookd.url, else http://"+wire.DefaultListen+")")
	f.String(&data, "data", wire.DefaultData, "data directory of a local hookd, for the default --server")
	f.String(&customer, "customer", "", "customer id (a UUID)")
	f.String(&sub, "subscription", "", "subscription id (a UUID)")
	f.String(&job, "job", "", "export job id (a UUID)")
	f.String(&d.clientID, "client-id", "", "the customer's client id, for an access token")
	f.String(&d.secret, "client-secret", "", "the client's secret")
	f.String(&d.token, "token", "", "an access token to use instead of the client credentials")
	f.String(&d.out, "output", "", "FILE to write (default: the file name the server sends)")
	f.Short(&d.out, "o", "output")
	f.Bool(&d.resume, "resume", false, "continue an interrupted download from FILE.part")
	f.Bool(&d.force, "force", false, "overwrite FILE if it exists")
	rest, err := f.ParseInterspersed(args[1:], getenv)
	if err != nil {
		return parseErr(stderr, "export download", err)
	}
	if len(rest) > 0 {
		return usageErr(stderr, "export download", "no arguments expected, got %q", rest)
	}
	for _, id := range []struct {
		name string
		raw  string
		p    *uuid.UUID
	}{{"customer", customer, &d.customer}, {"subscription", sub, &d.sub}, {"job", job, &d.job}} {
		if *id.p, err = uuidFlag(stderr, "export download", id.name, id.raw); err != nil {
			return err
		}
	}
	if d.token == "" && (d.clientID == "" || d.secret == "") {
		return usageErr(stderr, "export download", "give --client-id and --client-secret (or HOOKD_CLIENT_ID and HOOKD_CLIENT_SECRET), or --token")
	}
	d.server = serverURL(server, data)
	file, n, etag, err := d.run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "downloaded %s: %s (%d bytes), ETag %s verified (SHA-256)\n", file, humanBytes(n), n, etag)
	return nil
}

// serverURL is the base URL of hookd: given, recorded by a local server in
// <data>/hookd.url, or the default listen address.
func serverURL(server, data string) string {
	if server == "" {
		if b, err := os.ReadFile(filepath.Join(data, wire.URLFile)); err == nil {
			server = strings.TrimSpace(string(b))
		} else {
			server = "http://" + wire.DefaultListen
		}
	}
	return strings.TrimRight(server, "/")
}

func (d *exportDownload) base() string {
	return d.server + "/" + d.customer.String() + "/webhooks/subscriptions/" + d.sub.String() + "/exports/" + d.job.String()
}

// run downloads the file; it returns FILE, its size and its verified ETag.
func (d *exportDownload) run(ctx context.Context) (string, int64, string, error) {
	if d.token == "" {
		tok, err := d.login(ctx)
		if err != nil {
			return "", 0, "", err
		}
		d.token = tok
	}
	if d.out == "" && d.resume {
		// The partial file is named after FILE: learn the server's name first.
		resp, err := d.get(ctx, "bytes=0-0", "")
		if err != nil {
			return "", 0, "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
			return "", 0, "", d.downloadError(ctx, resp)
		}
		d.out = d.fileName(resp)
	}
	if d.out != "" {
		if err := d.mayWrite(d.out); err != nil {
			return "", 0, "", err
		}
	}

	var offset int64
	var ifRange string
	if d.resume && d.out != "" {
		if fi, err := os.Stat(d.out + ".part"); err == nil && fi.Size() > 0 {
			offset = fi.Size()
			if b, err := os.ReadFile(d.out + ".part.etag"); err == nil {
				ifRange = strings.TrimSpace(string(b))
			}
		}
	}
	rng := ""
	if offset > 0 {
		rng = fmt.Sprintf("bytes=%d-", offset)
	}
	resp, err := d.get(ctx, rng, ifRange)
	if err == nil && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// FILE.part is as long as the file, or longer: download it again.
		resp.Body.Close()
		offset = 0
		resp, err = d.get(ctx, "", "")
	}
	if err != nil {
		return "", 0, "", err
	}
	defer resp.Body.Close()
	total := resp.ContentLength
	switch resp.StatusCode {
	case http.StatusOK:
		offset = 0 // a full answer: the file changed, or the server ignored Range
	case http.StatusPartialContent:
		start, size, err := contentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != offset {
			return "", 0, "", fmt.Errorf("unexpected Content-Range %q for a download resumed at byte %d", resp.Header.Get("Content-Range"), offset)
		}
		total = size
	default:
		return "", 0, "", d.downloadError(ctx, resp)
	}
	etag := resp.Header.Get("ETag")
	want, ok := sha256ETag(etag)
	if !ok {
		return "", 0, "", fmt.Errorf("the server sent no strong SHA-256 ETag (got %q); the file cannot be verified", etag)
	}
	if d.out == "" {
		d.out = d.fileName(resp)
		if err := d.mayWrite(d.out); err != nil {
			return "", 0, "", err
		}
	}
	part := d.out + ".part"

	sum := sha256.New()
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if offset > 0 {
		if err := hashFile(part, offset, sum); err != nil {
			return "", 0, "", err
		}
		flags = os.O_WRONLY | os.O_APPEND
	}
	w, err := os.OpenFile(part, flags, 0o600)
	if err != nil {
		return "", 0, "", err
	}
	if err := os.WriteFile(part+".etag", []byte(etag+"\n"), 0o600); err != nil {
		w.Close()
		return "", 0, "", err
	}
	prog := newProgress(d.stderr, "download", max(total, 0), true)
	prog.setBase(offset)
	n, err := io.Copy(io.MultiWriter(w, sum, prog), resp.Body)
	prog.finish()
	n += offset
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, "", fmt.Errorf("download interrupted after %d bytes: %w; run the command again with --resume to continue", n, err)
	}
	if total >= 0 && n != total {
		return "", 0, "", fmt.Errorf("download cut short at %d of %d bytes; run the command again with --resume to continue", n, total)
	}
	if got := sum.Sum(nil); hex.EncodeToString(got) != want {
		os.Remove(part)
		os.Remove(part + ".etag")
		return "", 0, "", fmt.Errorf("the file's SHA-256 %x does not match the ETag %s; %s was deleted", got, etag, part)
	}
	if err := os.Rename(part, d.out); err != nil {
		return "", 0, "", err
	}
	os.Remove(part + ".etag")
	if err := syncDir(filepath.Dir(d.out)); err != nil {
		return "", 0, "", err
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		fmt.Fprintf(d.stderr, "note: %s is %s-compressed, as stored\n", d.out, ce)
	}
	return d.out, n, etag, nil
}

// mayWrite refuses an existing FILE unless --force.
func (d *exportDownload) mayWrite(file string) error {
	if d.force {
		return nil
	}
	if _, err := os.Lstat(file); err == nil {
		return fmt.Errorf("%s exists; give --force to overwrite it", file)
	}
	return nil
}

// login gets an access token with the client credentials grant.
func (d *exportDownload) login(ctx context.Context) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"*:webhooks/**"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.server+"/"+d.customer.String()+"/login/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", d.userAgent)
	req.SetBasicAuth(d.clientID, d.secret)
	resp, err := d.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot reach hookd at %s: %w", d.server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get an access token: %w", responseError(resp))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", errors.New("get an access token: the answer holds no access_token")
	}
	return tok.AccessToken, nil
}

// get requests the download, with a Range and If-Range when not empty.
func (d *exportDownload) get(ctx context.Context, rng, ifRange string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base()+"/download", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("User-Agent", d.userAgent)
	req.Header.Set("Accept-Encoding", "identity, gzip, zstd") // bytes as stored: the ETag covers them
	if rng != "" {
		req.Header.Set("Range", rng)
		if ifRange != "" {
			req.Header.Set("If-Range", ifRange)
		}
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach hookd at %s: %w", d.server, err)
	}
	return resp, nil
}

// downloadError explains a refused download; on 404 it looks up the job's
// state, since a job that is still running has no file yet.
func (d *exportDownload) downloadError(ctx context.Context, resp *http.Response) error {
	err := responseError(resp)
	if resp.StatusCode != http.StatusNotFound {
		return err
	}
	req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, d.base(), nil)
	if rerr != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	jr, rerr := d.http.Do(req)
	if rerr != nil {
		return err
	}
	defer jr.Body.Close()
	var j struct {
		State string `json:"state"`
	}
	if jr.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(jr.Body, 1<<20)).Decode(&j) != nil || j.State == "" {
		return err
	}
	if j.State == "completed" {
		return fmt.Errorf("%w (the job is completed but its file is gone: files are kept seven days)", err)
	}
	return fmt.Errorf("%w (the job is %s; its file can be downloaded once it is completed)", err, j.State)
}

// fileName is FILE from the answer's Content-Disposition, or <jobId>.ndjson.
func (d *exportDownload) fileName(resp *http.Response) string {
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		name := filepath.Base(params["filename"])
		if name != "" && name != "." && name != ".." && name != "/" && !strings.ContainsAny(name, `/\`) {
			return name
		}
	}
	return d.job.String() + ".ndjson"
}

// sha256ETag returns the hex digest of a strong ETag that is a quoted hex SHA-256.
func sha256ETag(etag string) (string, bool) {
	s, ok := strings.CutPrefix(etag, `"`)
	s, ok2 := strings.CutSuffix(s, `"`)
	if !ok || !ok2 || len(s) != sha256.Size*2 {
		return "", false
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", false
	}
	return strings.ToLower(s), true
}

var contentRangeRE = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)

// contentRange parses "bytes start-end/size"; size is -1 when unknown.
func contentRange(v string) (start, size int64, err error) {
	m := contentRangeRE.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	start, _ = strconv.ParseInt(m[1], 10, 64)
	size = -1
	if m[3] != "*" {
		size, _ = strconv.ParseInt(m[3], 10, 64)
	}
	return start, size, nil
}

// hashFile feeds the first n bytes of path to h.
func hashFile(path string, n int64, h hash.Hash) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(h, f, n); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
