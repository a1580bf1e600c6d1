package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

const (
	// exportPoll is how often the harness asks for the job's state; the
	// measured export time is at most this much too long.
	exportPoll = 50 * time.Millisecond
	// exportWait bounds an export of the export phase.
	exportWait = 10 * time.Minute
)

// runExport exports the failed events the intake phase stored (sending
// them first when the intake phase did not run), once without compression
// and once with zstd, each on a freshly started hookd so that its peak RSS
// is the export's, then downloads the files through the API.
func (h *harness) runExport(ctx context.Context) error {
	if h.exported == nil {
		if err := h.intake(ctx, false); err != nil {
			return err
		}
	}
	ex := h.exported
	// The zstd run needs the same events unexported: a copy of the store
	// made while hookd is stopped.
	zdir := ex.data + "-zstd"
	if err := os.MkdirAll(zdir, 0o700); err != nil {
		return err
	}
	for _, name := range []string{"hookd.db", "admin.token"} {
		if err := copyFile(filepath.Join(zdir, name), filepath.Join(ex.data, name), nil); err != nil {
			return fmt.Errorf("copy the store for the zstd run: %w", err)
		}
	}
	if err := h.exportOnce(ctx, ex.data, "none"); err != nil {
		return err
	}
	err := h.exportOnce(ctx, zdir, "zstd")
	_ = os.RemoveAll(zdir)
	return err
}

// exportJob is the part of an export job the harness reads.
type exportJob struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	EventCount int64  `json:"eventCount"`
}

// exportJobDone starts an export job of the subscription whose jobs are at
// path (its .../exports) with the encoding, polls it every exportPoll
// until it completes and returns it with the time from the request to the
// completed state. A job that fails, is canceled or is not done within
// wait is an error.
func exportJobDone(ctx context.Context, srv *server, path, token, enc string, wait time.Duration) (exportJob, time.Duration, error) {
	start := time.Now()
	var job exportJob
	if err := srv.call(ctx, http.MethodPost, path, token, map[string]string{"encoding": enc}, http.StatusAccepted, &job); err != nil {
		return job, 0, err
	}
	deadline := start.Add(wait)
	for job.State != "completed" {
		if job.State == "failed" || job.State == "canceled" {
			return job, 0, fmt.Errorf("export job %s ended %s", job.ID, job.State)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return job, 0, fmt.Errorf("export job %s still %s after %v", job.ID, job.State, time.Since(start).Round(time.Second))
		}
		time.Sleep(exportPoll)
		if err := srv.call(ctx, http.MethodGet, path+"/"+job.ID, token, nil, http.StatusOK, &job); err != nil {
			return job, 0, err
		}
	}
	return job, time.Since(start), nil
}

// exportOnce starts hookd on dir, exports the subscription with the
// encoding and downloads the file.
func (h *harness) exportOnce(ctx context.Context, dir, enc string) (err error) {
	ex := h.exported
	srv, err := startServer(ctx, h.bin, dir, h.hc, append(exportServerFlags, "--export-encoding", enc)...)
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	phase := "export " + enc
	h.logf("%s: %d failed events", phase, ex.events)
	jobs := ex.tenant.path("/webhooks/subscriptions/" + ex.sub + "/exports")
	rss := sampleRSS(srv.PID)
	job, took, err := exportJobDone(ctx, srv, jobs, ex.tenant.Token, enc, exportWait)
	win := rss.end()
	if err != nil {
		return fmt.Errorf("%s: %w (log: %s.log)", phase, err, dir)
	}
	if job.EventCount != int64(ex.events) {
		return fmt.Errorf("%s: the job holds %d events, want %d", phase, job.EventCount, ex.events)
	}
	suffix := ".ndjson"
	if enc == "zstd" {
		suffix += ".zst"
	}
	file := filepath.Join(dir, "exports", ex.tenant.Customer, ex.sub, job.ID+suffix)
	fi, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("%s: the export file: %w", phase, err)
	}
	size := fi.Size()
	scaledLimit := 10 * float64(ex.events) / 1e6
	storeNote := ""
	if st, err := os.Stat(filepath.Join(dir, "hookd.db")); err == nil {
		storeNote = fmt.Sprintf("; store file %.0f MB", float64(st.Size())/1e6)
	}
	h.rep.add(phase, "seconds to export", took.Seconds(), "s", atMost(scaledLimit, " s"),
		fmt.Sprintf("%d events; request to completed state, polled every %v%s", ex.events, exportPoll, storeNote))
	h.rep.add(phase, "events exported/s", float64(ex.events)/took.Seconds(), "/s", nil, "")
	h.rep.add(phase, "file size", float64(size)/1e6, "MB", nil, "")
	h.rep.add(phase, "MB/s written", float64(size)/1e6/took.Seconds(), "MB/s", nil, "file size / seconds to export")
	h.rep.addWindow(phase, "", win, below(150, " MiB"), "fresh hookd, the export only")

	if err := h.download(ctx, srv, jobs+"/"+job.ID+"/download", file, size, enc); err != nil {
		return err
	}
	return h.measureIdle(ctx, srv, phase, "the export and its downloads")
}

// download fetches the file through the API, to io.Discard and to a file,
// and for comparison copies the stored file with a plain read/write loop.
func (h *harness) download(ctx context.Context, srv *server, path, stored string, size int64, enc string) error {
	phase := "download " + enc
	rss := sampleRSS(srv.PID)
	n, took, err := h.fetch(ctx, srv, h.exported.tenant.Token, path, io.Discard)
	win := rss.end()
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s: got %d bytes, want %d", phase, n, size)
	}
	var t *target
	if enc == "none" {
		t = atLeast(300, " MB/s")
	}
	h.rep.add(phase, "MB/s through the API to io.Discard", float64(n)/1e6/took.Seconds(), "MB/s", t, fmt.Sprintf("%.0f MB in %.2f s", float64(n)/1e6, took.Seconds()))
	h.rep.addWindow(phase, "", win, nil, "")
	if enc != "none" {
		return nil
	}

	dst := filepath.Join(h.work, "download.ndjson")
	defer os.Remove(dst)
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	n, took, err = h.fetch(ctx, srv, h.exported.tenant.Token, path, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	h.rep.add(phase, "MB/s through the API to a file", float64(n)/1e6/took.Seconds(), "MB/s", nil, "")

	cp := filepath.Join(h.work, "copy.ndjson")
	defer os.Remove(cp)
	start := time.Now()
	if err := copyFile(cp, stored, make([]byte, 1<<20)); err != nil {
		return err
	}
	took = time.Since(start)
	h.rep.add(phase, "reference: plain file copy of the stored file", float64(size)/1e6/took.Seconds(), "MB/s", nil, "read/write loop, 1 MiB buffer, page cache warm")
	return nil
}

// fetch GETs path with the bearer token into w and returns the bytes and
// the time taken.
func (h *harness) fetch(ctx context.Context, srv *server, token, path string, w io.Writer) (int64, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := srv.http.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("download: got status %d, want 200", resp.StatusCode)
	}
	// Plain writer and reader, so that CopyBuffer reads with its own buffer.
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{resp.Body}, make([]byte, 256<<10))
	return n, time.Since(start), err
}

// copyFile copies src to dst. With buf, it is a plain read/write loop
// through buf; without, io.Copy picks the fastest way the OS offers.
func copyFile(dst, src string, buf []byte) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if buf == nil {
		_, err = io.Copy(out, in)
		return err
	}
	for {
		n, rerr := in.Read(buf)
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
