package jobs

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"gocloud.dev/blob"

	"hookd/blobsink"
	"hookd/store"
)

// gateway is a versitygw S3 server of one test, which the test stops and
// starts again on the same port and directory, as an operator's S3 server
// goes down and comes back.
type gateway struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
}

const (
	gwAccess = "hookdoutageroot"
	gwSecret = "hookd-outage-secret-key-0123456789"
	gwBucket = "outage"
)

// startGateway starts versitygw (HOOKD_TEST_VERSITYGW, set by
// .ci/with-versitygw.sh) with a bucket, or skips the test without it.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	bin := os.Getenv("HOOKD_TEST_VERSITYGW")
	if bin == "" {
		if os.Getenv("HOOKD_REQUIRE_EXTERNAL") == "1" {
			t.Fatal("HOOKD_TEST_VERSITYGW is not set and HOOKD_REQUIRE_EXTERNAL=1: run the tests under .ci/with-versitygw.sh")
		}
		t.Skip("HOOKD_TEST_VERSITYGW is not set: no versitygw binary (run under .ci/with-versitygw.sh)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, bin: bin, dir: t.TempDir(), addr: ln.Addr().String()}
	ln.Close()
	if err := os.MkdirAll(filepath.Join(g.dir, "root"), 0o700); err != nil {
		t.Fatal(err)
	}
	g.start()
	t.Cleanup(g.stop)
	out, err := exec.Command(bin, "admin", "--access", gwAccess, "--secret", gwSecret, "--region", "us-east-1",
		"--endpoint-url", "http://"+g.addr, "create-bucket", "--owner", gwAccess, "--bucket", gwBucket).CombinedOutput()
	if err != nil {
		t.Fatalf("create bucket: %v\n%s", err, out)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", gwAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", gwSecret)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return g
}

func (g *gateway) url() string {
	return "s3://" + gwBucket + "?endpoint=http://" + g.addr + "&use_path_style=true&region=us-east-1&disable_https=true"
}

// start runs the server and waits until it accepts connections.
func (g *gateway) start() {
	g.t.Helper()
	g.cmd = exec.Command(g.bin, "--port", g.addr, "--access", gwAccess, "--secret", gwSecret,
		"--region", "us-east-1", "--quiet", "posix", filepath.Join(g.dir, "root"))
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("versitygw does not listen on %s: %v", g.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server (SIGKILL: an outage, not a shutdown).
func (g *gateway) stop() {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Kill()
	_ = g.cmd.Wait()
	g.cmd = nil
}

// waitFor polls cond until it holds; the server's outage and the SDK's own
// retries take real time, so nothing but polling observes them.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// uploadsOf lists the unfinished multipart uploads in the bucket and the
// parts each holds (none while the server is down).
func uploadsOf(t *testing.T, ctx context.Context, uploads *blobsink.Uploads, b *blob.Bucket) map[string]int {
	t.Helper()
	var client *s3.Client
	if !b.As(&client) {
		t.Fatal("no S3 client")
	}
	out := map[string]int{}
	_ = uploads.List(ctx, func(up blobsink.Upload) error {
		parts, err := client.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(gwBucket), Key: aws.String(up.Key), UploadId: aws.String(up.ID)})
		if err != nil {
			return err
		}
		out[up.Key] += len(parts.Parts)
		return nil
	})
	return out
}

// TestExportSurvivesS3Outage runs exports against a real S3-compatible
// server (versitygw) that is killed while a file is being uploaded, and
// before an export starts, then started again on the same port and
// directory:
//   - the write that the outage cut off is retried and the job completes,
//     and the parts the dead attempt had uploaded are gone (aborted);
//   - an export started while the server is down waits and completes;
//   - with a retry bound shorter than the outage the job fails with
//     failureReason storage-unavailable, and its uploaded parts are
//     aborted as soon as the server is back.
func TestExportSurvivesS3Outage(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads tens of megabytes and waits for the S3 client's retries")
	}
	gw := startGateway(t)
	ctx := t.Context()
	b, err := blobsink.Open(ctx, gw.url())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	uploads, err := blobsink.NewUploads(gw.url(), b)
	if err != nil || uploads == nil {
		t.Fatalf("NewUploads: %v", err)
	}
	db := openRealClockStore(t)

	// cutOff makes the exporter's first attempt at job kill the server
	// once more than 18 MB are handed to the writer and the upload holds
	// a part: parts are stored when the outage begins.
	var mu sync.Mutex
	cut := map[string]bool{}
	cutOff := func(ex *Exporter) {
		ex.afterChunk = func(job store.ExportJob, written int64) {
			mu.Lock()
			defer mu.Unlock()
			if cut[job.ID.String()] || written < 18<<20 {
				return
			}
			cut[job.ID.String()] = true
			// This runs on the exporter's goroutine: no t.Fatal here.
			for deadline := time.Now().Add(time.Minute); uploadsOf(t, ctx, uploads, b)[job.Key] == 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Error("no part of the upload is stored after a minute")
					break
				}
			}
			gw.stop()
		}
	}
	get := func(id store.ExportJob) store.ExportJob {
		t.Helper()
		j, err := db.ExportByID(id.ID)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}

	t.Run("killed mid-upload, then back", func(t *testing.T) {
		s := newSub(t, db, false)
		ids := addFailed(t, db, s, 70000)
		ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Uploads: uploads, Log: zerolog.Nop(), PublicURL: testPublicURL,
			Poll: 50 * time.Millisecond, RetryBackoff: 100 * time.Millisecond, RetryFor: 10 * time.Minute})
		cutOff(ex)
		job, err := db.CreateExport(s.CustomerID, s.ID, "", store.DefaultExportScope, 0)
		if err != nil {
			t.Fatal(err)
		}
		ex.Start(ctx)
		defer ex.Close()
		waitFor(t, "a blob error", 3*time.Minute, func() bool { return get(job).BlobErrors > 0 })
		if j := get(job); !j.State.Active() || j.FailureReason != "" {
			t.Fatalf("while the server is down: got %+v, want the job active (waiting or trying again)", j)
		}
		gw.start()
		waitFor(t, "the export to end", 3*time.Minute, func() bool { return !get(job).State.Active() })
		j := get(job)
		if j.State != store.ExportCompleted || j.EventCount != int64(len(ids)) {
			t.Fatalf("after the server came back: got %+v, want completed with %d events", j, len(ids))
		}
		data, err := b.ReadAll(ctx, j.Key)
		if err != nil || bytes.Count(data, []byte("\n")) != len(ids) {
			t.Fatalf("the file: %d lines, %v; want %d", bytes.Count(data, []byte("\n")), err, len(ids))
		}
		if left := uploadsOf(t, ctx, uploads, b); len(left) != 0 {
			t.Errorf("unfinished uploads left: %v, want none (the dead attempt's is aborted)", left)
		}
		if n := testutil.ToFloat64(ex.m.blobErrors.WithLabelValues("write")); n < 1 {
			t.Errorf("blob write errors counted: %v, want at least 1", n)
		}
	})

	t.Run("down before the export starts", func(t *testing.T) {
		s := newSub(t, db, false)
		addFailed(t, db, s, 10)
		gw.stop()
		ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Uploads: uploads, Log: zerolog.Nop(), PublicURL: testPublicURL,
			Poll: 50 * time.Millisecond, RetryBackoff: 100 * time.Millisecond, RetryFor: 10 * time.Minute})
		job, err := db.CreateExport(s.CustomerID, s.ID, "zstd", store.DefaultExportScope, 0)
		if err != nil {
			t.Fatal(err)
		}
		ex.Start(ctx)
		defer ex.Close()
		waitFor(t, "a blob error", 3*time.Minute, func() bool { return get(job).BlobErrors > 0 })
		gw.start()
		waitFor(t, "the export to end", 3*time.Minute, func() bool { return !get(job).State.Active() })
		if j := get(job); j.State != store.ExportCompleted || j.EventCount != 10 {
			t.Fatalf("got %+v, want completed with 10 events", j)
		}
	})

	t.Run("down longer than the retry bound", func(t *testing.T) {
		s := newSub(t, db, false)
		addFailed(t, db, s, 70000)
		ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Uploads: uploads, Log: zerolog.Nop(), PublicURL: testPublicURL,
			Poll: 50 * time.Millisecond, RetryBackoff: 100 * time.Millisecond, RetryFor: time.Second})
		cutOff(ex)
		job, err := db.CreateExport(s.CustomerID, s.ID, "", store.DefaultExportScope, 0)
		if err != nil {
			t.Fatal(err)
		}
		ex.Start(ctx)
		defer ex.Close()
		waitFor(t, "the export to fail", 3*time.Minute, func() bool { return !get(job).State.Active() })
		j := get(job)
		if j.State != store.ExportFailed || j.FailureReason != store.FailureStorageUnavailable || !strings.Contains(j.Error, "blob store") {
			t.Fatalf("got %+v, want failed with %q", j, store.FailureStorageUnavailable)
		}
		gw.start()
		waitFor(t, "the failed attempt's upload aborted", 2*time.Minute, func() bool {
			return len(uploadsOf(t, ctx, uploads, b)) == 0
		})
		if ok, _ := b.Exists(ctx, j.Key); ok {
			t.Error("the failed job's file exists")
		}
	})
}
