package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/blob"

	"hookd/blobsink"
	"hookd/store"
	"hookd/wire"
)

// DefaultExportCooldown is hookd's default ExportOptions.Cooldown (the
// serve flag's default); a zero Cooldown turns the cool-down off.
const DefaultExportCooldown = 24 * time.Hour

// exportPageSize is the number of jobs per page of the list.
const exportPageSize = 25

// ExportOptions configure the bulk export API (SPEC section 8).
type ExportOptions struct {
	// Bucket holds the export files; downloads stream from it.
	Bucket *blob.Bucket
	// Scope is where only one job may be active at a time;
	// store.DefaultExportScope when empty. No scope spans customers.
	Scope store.ExportScope
	// Cooldown is how long after a subscription's completed export the
	// next one is refused; 0 turns it off.
	Cooldown time.Duration
	// Encoding compresses the files of jobs that do not ask for an encoding.
	Encoding blobsink.Encoding
	// Retention is how long jobs and their files stay (from the job's
	// creation); store.DefaultRetention when zero.
	Retention time.Duration
	// Started tells the exporter that a job waits; it must not block.
	Started func()
}

// exportJSON is the wire form of an export job.
type exportJSON = wire.ExportJob

func exportsPath(cid, sid uuid.UUID) string { return subscriptionPath(cid, sid) + "/exports" }

// toExportJSON renders j. Links use the /exports form of the paths; the
// download link and the event count appear once the job is completed, the
// failure reason once it failed.
func toExportJSON(j store.ExportJob) exportJSON {
	list := exportsPath(j.CustomerID, j.SubscriptionID)
	self := list + "/" + j.ID.String()
	out := exportJSON{
		ID: j.ID, CreatedAt: timeJSON(j.CreatedAt), UpdatedAt: timeJSON(j.UpdatedAt), State: string(j.State),
		Links: map[string]link{"self": {Href: self}, "exports": {Href: list}},
	}
	if j.State == store.ExportCompleted {
		n := j.EventCount
		out.EventCount = &n
		out.Links["download"] = link{Href: self + "/download"}
	}
	if j.State == store.ExportFailed {
		out.FailureReason = j.FailureReason
		if out.FailureReason == "" { // a job that failed before reasons were kept
			out.FailureReason = store.FailureInternal
		}
	}
	return out
}

func (s *Server) exportRetention() time.Duration {
	if s.Exports.Retention > 0 {
		return s.Exports.Retention
	}
	return store.DefaultRetention
}

// createExport starts an export job: 202 with the job in processing. The
// optional body {"encoding":"none|gzip|zstd"} picks the file's compression.
func (s *Server) createExport(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	enc, err := s.exportEncoding(w, r)
	if err != nil {
		return err
	}
	scope := s.Exports.Scope
	if scope == "" {
		scope = store.DefaultExportScope
	}
	job, err := s.DB.CreateExport(cid, sid, string(enc), scope, s.Exports.Cooldown)
	if err != nil {
		return err
	}
	s.metrics.exportsCreated.Inc()
	if s.Exports.Started != nil {
		s.Exports.Started()
	}
	out := toExportJSON(job)
	w.Header().Set("Location", out.Links["self"].Href)
	return writeJSON(w, http.StatusAccepted, out)
}

// exportEncoding reads the optional body of createExport.
func (s *Server) exportEncoding(w http.ResponseWriter, r *http.Request) (blobsink.Encoding, error) {
	body, err := readBody(w, r, s.MaxBody)
	if err != nil {
		return blobsink.None, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return s.Exports.Encoding, nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	m, err := decodeObject(w, r, s.MaxBody)
	if err != nil {
		return blobsink.None, err
	}
	var bad []ParamError
	enc := s.Exports.Encoding
	for k, v := range m {
		if k != "encoding" {
			bad = append(bad, ParamError{Name: k, Reason: "is not an export field; the only field is encoding"})
			continue
		}
		var name string
		if json.Unmarshal(v, &name) != nil {
			bad = append(bad, ParamError{Name: k, Reason: "must be a string: none, gzip or zstd"})
			continue
		}
		if e, err := blobsink.ParseEncoding(name); err != nil {
			bad = append(bad, ParamError{Name: k, Reason: "must be none, gzip or zstd"})
		} else {
			enc = e
		}
	}
	if len(bad) > 0 {
		return blobsink.None, errInvalidParams(bad)
	}
	return enc, nil
}

// listExports lists the subscription's jobs of the retention period,
// oldest first; ?page=N pages them 25 at a time.
func (s *Server) listExports(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	page, err := pageQuery(r)
	if err != nil {
		return err
	}
	jobs, err := s.DB.Exports(cid, sid, s.DB.Now().Add(-s.exportRetention()))
	if err != nil {
		return err
	}
	from, to, served, last := paginate(len(jobs), exportPageSize, page)
	items := make([]exportJSON, 0, to-from)
	for _, j := range jobs[from:to] {
		items = append(items, toExportJSON(j))
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"total":     len(jobs),
		"_links":    pageLinks(exportsPath(cid, sid), served, last),
		"_embedded": map[string]any{"exports": items},
	})
}

// exportJob returns the job named by the path; one older than the
// retention period is gone (404), like one that never existed.
func (s *Server) exportJob(r *http.Request, cid uuid.UUID) (store.ExportJob, error) {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return store.ExportJob{}, err
	}
	id, err := pathUUID(r, "exportId")
	if err != nil {
		return store.ExportJob{}, err
	}
	job, err := s.DB.Export(cid, sid, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !s.DB.Now().Before(job.CreatedAt.Add(s.exportRetention()))) {
		return store.ExportJob{}, errNotFound("no export " + id.String() + " of this subscription in the last " + days(s.exportRetention()))
	}
	return job, err
}

// days renders a retention period for messages.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if n := int(d / (24 * time.Hour)); n != 1 {
			return strconv.Itoa(n) + " days"
		}
		return "day"
	}
	return d.String()
}

func (s *Server) getExport(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	job, err := s.exportJob(r, cid)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toExportJSON(job))
}

// cancelExport cancels a job that has not begun writing: 200 with the job
// canceled; 409 once it writes or has ended.
func (s *Server) cancelExport(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	job, err := s.exportJob(r, cid)
	if err != nil {
		return err
	}
	job, err = s.DB.CancelExport(cid, job.SubscriptionID, job.ID)
	if err != nil {
		return err
	}
	s.metrics.exportsCanceled.Inc()
	return writeJSON(w, http.StatusOK, toExportJSON(job))
}

// downloadExport streams a completed job's file through the API, as
// stored: compressed files keep their compression and are sent with the
// matching Content-Encoding, and byte ranges count stored bytes. The strong
// ETag is the SHA-256 of the stored bytes, computed while writing.
// If-None-Match (304), Range (206, 416) and If-Range are honored by
// http.ServeContent. A job that is not completed, or whose file is gone,
// is 404.
func (s *Server) downloadExport(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	job, err := s.exportJob(r, cid)
	if err != nil {
		return err
	}
	if job.State != store.ExportCompleted || s.Exports.Bucket == nil {
		return errNotFound("export " + job.ID.String() + " has no file to download: it is " + string(job.State))
	}
	enc, err := blobsink.ParseEncoding(job.Encoding)
	if err != nil {
		return err
	}
	body := &blobReader{ctx: r.Context(), bucket: s.Exports.Bucket, key: job.Key, size: job.Size}
	defer body.Close()
	if !etagListed(r.Header.Get("If-None-Match"), job.ETag) {
		// Only a listed ETag answers 304: http.ServeContent would also
		// take a malformed value that starts with * ("*0") for one.
		r.Header.Del("If-None-Match")
		// Open now, so that a file that is gone is a clean 404.
		if err := body.open(); errors.Is(err, blobsink.ErrNotFound) {
			return errNotFound("the file of export " + job.ID.String() + " is no longer available")
		} else if err != nil {
			return err
		}
	}
	h := w.Header()
	h.Set("Content-Type", blobsink.ContentType)
	h.Set("ETag", job.ETag)
	h.Set("Content-Disposition", `attachment; filename="`+job.ID.String()+enc.Suffix()+`"`)
	h.Set("Cache-Control", "private, no-cache")
	if enc != blobsink.None {
		h.Set("Content-Encoding", string(enc))
		if r.Header.Get("Range") == "" {
			h.Set("Content-Length", strconv.FormatInt(job.Size, 10)) // ServeContent leaves it out when encoded
		}
	}
	if zeroSuffixRange(r.Header.Get("Range")) {
		// http.ServeContent answers "bytes=-0" with a 206 of an empty,
		// inverted range; RFC 9110 section 14.1.1 makes it unsatisfiable.
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(job.Size, 10))
		return problem(http.StatusRequestedRangeNotSatisfiable, "range-not-satisfiable", "a suffix range of zero bytes selects nothing")
	}
	http.ServeContent(w, r, "", job.CompletedAt, body)
	if body.err != nil && r.Context().Err() == nil {
		s.Log.Error().Err(body.err).Str("job", job.ID.String()).Msg("export download cut short")
	}
	return nil
}

// zeroSuffixRange reports whether a Range header of bytes holds a suffix
// range of length zero ("-0").
func zeroSuffixRange(header string) bool {
	specs, ok := strings.CutPrefix(header, "bytes=")
	if !ok {
		return false
	}
	for _, spec := range strings.Split(specs, ",") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(spec), "-"); ok && n != "" && strings.Trim(n, "0") == "" {
			return true
		}
	}
	return false
}

// etagListed reports whether an If-None-Match value lists etag (weak
// comparison, as RFC 9110 asks for If-None-Match) or is "*".
func etagListed(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || (t != "" && strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/")) {
			return true
		}
	}
	return false
}

// blobReader is an io.ReadSeeker over a stored file of known size. Seek
// only moves the offset; a Read at an offset where no reader is open opens
// a range reader from there to the end, so that ServeContent's seeks cost
// nothing and each range is one request to the bucket.
type blobReader struct {
	ctx    context.Context
	bucket *blob.Bucket
	key    string
	size   int64
	off    int64
	r      io.ReadCloser
	rOff   int64 // where r is
	err    error // the first read error, for the log
}

// open opens a reader at the current offset. At the end of the file (an
// empty file, say) there is nothing to read and it only checks that the
// file exists: S3 refuses a range of zero bytes.
func (b *blobReader) open() error {
	b.Close()
	if b.off >= b.size {
		_, err := blobsink.Stat(b.ctx, b.bucket, b.key)
		return err
	}
	r, err := blobsink.OpenRange(b.ctx, b.bucket, b.key, b.off, b.size-b.off)
	if err != nil {
		return err
	}
	b.r, b.rOff = r, b.off
	return nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if b.r == nil || b.rOff != b.off {
		if err := b.open(); err != nil {
			b.err = err
			return 0, err
		}
	}
	n, err := b.r.Read(p)
	b.off += int64(n)
	b.rOff = b.off
	if errors.Is(err, io.EOF) && b.off < b.size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && !errors.Is(err, io.EOF) && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	default:
		return b.off, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return b.off, errors.New("seek: negative position")
	}
	b.off = offset
	return offset, nil
}

// Close closes the open reader, if any.
func (b *blobReader) Close() error {
	if b.r == nil {
		return nil
	}
	err := b.r.Close()
	b.r = nil
	return err
}
