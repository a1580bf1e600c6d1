package blobsink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"gocloud.dev/blob"
)

// Sizes and limits of the write path, chosen for a 2-core host with a
// memory budget of about 150 MB for a whole export.
const (
	// bufferSize is the size of the buffers Write fills and of the buffer
	// between the compressor and the blob writer.
	bufferSize = 1 << 20
	// partSize is the S3 multipart part size; partConcurrency parts are in
	// flight at once (plus one being filled).
	partSize        = 8 << 20
	partConcurrency = 2
	// buffers is the number of bufferSize buffers between the caller and
	// the Writer's goroutine.
	buffers = 2
	// zstdConcurrency lets zstd compress one block while the next fills.
	zstdConcurrency = 2
	// zstdWindow is zstd's match window. NDJSON lines repeat their shape
	// within a few lines: a larger window costs memory and time and gains
	// nothing measurable.
	zstdWindow = 1 << 20
)

var (
	errClosed  = errors.New("blobsink: writer already closed")
	errAborted = errors.New("blobsink: write aborted")
)

// Info describes a committed export file.
type Info struct {
	// Key is the file's key in the bucket.
	Key string
	// Size is the number of stored (possibly compressed) bytes.
	Size int64
	// ETag is a strong HTTP entity tag: the quoted hex SHA-256 of the stored
	// bytes, computed while writing.
	ETag string
	// Lines is the number of NDJSON lines written.
	Lines int64
	// Encoding is the file's compression.
	Encoding Encoding
}

// Writer streams one export file into a bucket. It is not safe for
// concurrent use. Close commits the file; Abort discards it.
//
// Write only copies into a 1 MiB buffer; full buffers go to a goroutine of
// the Writer that compresses, hashes and stores them, so that the work of
// the caller (encoding lines) and of the sink run on two cores at once. The
// goroutine exits in Close or Abort, one of which must be called.
type Writer struct {
	key    string
	enc    Encoding
	parent context.Context // the caller's context, for clean-up after an abort
	cancel context.CancelFunc
	bw     *blob.Writer
	file   *os.File  // fileblob's temporary file, nil on other backends
	s3     *s3Upload // the S3 upload, nil on other backends

	// The caller's side.
	cur      []byte        // the buffer being filled
	full     chan<- []byte // filled buffers, to the worker
	free     <-chan []byte // emptied buffers, from the worker
	result   <-chan error  // the worker's outcome, once full is closed
	handedIn bool          // full is closed
	raw      int64         // bytes given to Write
	lines    int64
	last     byte // last byte written, to count an unterminated last line
	err      error
	done     bool

	// The worker's side.
	stage   io.Writer      // where full buffers go: comp, or sum
	comp    io.WriteCloser // compressor, or nil
	out     *bufio.Writer  // buffer behind comp, or nil
	sum     *summer        // counts and hashes the stored bytes
	werr    atomic.Pointer[error]
	aborted atomic.Bool
}

// NewWriter starts writing key in b with encoding enc. Nothing is reachable
// under key until Close returns without error. Cancelling ctx aborts the
// write, as Abort does. The caller must call Close or Abort.
func NewWriter(ctx context.Context, b *blob.Bucket, key string, enc Encoding) (*Writer, error) {
	if !enc.valid() {
		return nil, fmt.Errorf("blobsink: unknown encoding %q", string(enc))
	}
	w := &Writer{key: key, enc: enc, parent: ctx}
	ctx, w.cancel = context.WithCancel(ctx)
	opts := &blob.WriterOptions{
		ContentType:     ContentType,
		ContentEncoding: string(enc),
		BufferSize:      partSize,
		MaxConcurrency:  partConcurrency,
		BeforeWrite: func(as func(any) bool) error {
			var f *os.File
			if as(&f) {
				w.file = f
			}
			w.s3 = newS3Upload(b, as)
			return nil
		},
	}
	bw, err := b.NewWriter(ctx, key, opts)
	if err != nil {
		w.cancel()
		return nil, fmt.Errorf("blobsink: create %s: %w", key, err)
	}
	w.bw = bw
	w.sum = &summer{dst: bw, h: sha256.New()}
	w.stage = w.sum
	switch enc {
	case Gzip:
		w.out = bufio.NewWriterSize(w.sum, bufferSize)
		w.comp, err = gzip.NewWriterLevel(w.out, gzip.BestSpeed)
	case Zstd:
		w.out = bufio.NewWriterSize(w.sum, bufferSize)
		w.comp, err = zstd.NewWriter(w.out,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(zstdConcurrency),
			zstd.WithWindowSize(zstdWindow))
	}
	if err != nil {
		w.cancel()
		_ = bw.Close()
		return nil, fmt.Errorf("blobsink: %s: %w", enc, err)
	}
	if w.comp != nil {
		w.stage = w.comp
	}
	full := make(chan []byte)
	free := make(chan []byte, buffers)
	result := make(chan error, 1)
	w.full, w.free, w.result = full, free, result
	w.cur = make([]byte, 0, bufferSize)
	for range buffers - 1 {
		free <- make([]byte, 0, bufferSize)
	}
	go w.work(full, free, result)
	return w, nil
}

// work runs the sink's side of the pipeline: it stores every filled buffer,
// then, when full is closed, finishes the compressed stream and reports on
// result. After an error or an abort it keeps emptying buffers without
// storing them.
func (w *Writer) work(full <-chan []byte, free chan<- []byte, result chan<- error) {
	var err error
	for buf := range full {
		if err == nil && !w.aborted.Load() {
			if _, err = w.stage.Write(buf); err != nil {
				werr := err
				w.werr.Store(&werr)
			}
		}
		free <- buf[:0]
	}
	if err != nil || w.aborted.Load() {
		if w.comp != nil {
			w.sum.dst = io.Discard // release the compressor without storing more
			_ = w.comp.Close()
		}
		if err == nil {
			err = errAborted
		}
		result <- err
		return
	}
	if w.comp != nil {
		if err = w.comp.Close(); err == nil {
			err = w.out.Flush()
		}
	}
	result <- err
}

// Write adds p, one or more whole NDJSON lines, to the file. Writes are
// buffered, so small ones are cheap. After an error every later Write fails
// and Close aborts.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	w.raw += int64(len(p))
	w.lines += int64(bytes.Count(p, []byte{'\n'}))
	w.last = p[len(p)-1]
	n := len(p)
	for len(p) > 0 {
		c := copy(w.cur[len(w.cur):cap(w.cur)], p)
		w.cur = w.cur[:len(w.cur)+c]
		p = p[c:]
		if len(w.cur) == cap(w.cur) {
			w.full <- w.cur
			w.cur = <-w.free
			if err := w.werr.Load(); err != nil {
				w.err = fmt.Errorf("blobsink: write %s: %w", w.key, *err)
				return n - len(p), w.err
			}
		}
	}
	return n, nil
}

// handIn gives the last buffer to the worker and waits for it to finish.
func (w *Writer) handIn() error {
	if w.handedIn {
		return errAborted
	}
	w.handedIn = true
	if len(w.cur) > 0 {
		w.full <- w.cur
	}
	w.cur = nil
	close(w.full)
	return <-w.result
}

// Close flushes and commits the file: when it returns without error the
// file is stored in full under its key (and, on a file:// bucket, is on
// disk), and the returned Info describes it. When it returns an error the
// write was aborted; if the error came after the commit itself (the final
// fsync on a file:// bucket), the key may exist and the caller should remove
// it with Delete. Close after Close or Abort returns an error.
func (w *Writer) Close() (Info, error) {
	if w.done {
		return Info{}, errClosed
	}
	if w.err != nil {
		err := w.err
		w.Abort()
		return Info{}, err
	}
	if err := w.handIn(); err != nil {
		w.Abort()
		return Info{}, fmt.Errorf("blobsink: write %s: %w", w.key, err)
	}
	var tmp os.FileInfo
	if w.file != nil {
		// The data must be on disk before fileblob renames it into place.
		if err := w.file.Sync(); err != nil {
			w.Abort()
			return Info{}, fmt.Errorf("blobsink: sync %s: %w", w.key, err)
		}
		var err error
		if tmp, err = w.file.Stat(); err != nil {
			w.Abort()
			return Info{}, fmt.Errorf("blobsink: stat %s: %w", w.key, err)
		}
	}
	w.done = true
	defer w.cancel()
	if err := w.bw.Close(); err != nil {
		if w.s3 != nil {
			w.s3.abortMultipart(w.parent)
		}
		return Info{}, fmt.Errorf("blobsink: commit %s: %w", w.key, err)
	}
	if w.file != nil {
		if err := syncCommitted(w.file.Name(), tmp, w.key); err != nil {
			return Info{}, fmt.Errorf("blobsink: sync %s: %w", w.key, err)
		}
	}
	lines := w.lines
	if w.raw > 0 && w.last != '\n' {
		lines++
	}
	return Info{
		Key:      w.key,
		Size:     w.sum.n,
		ETag:     `"` + hex.EncodeToString(w.sum.h.Sum(nil)) + `"`,
		Lines:    lines,
		Encoding: w.enc,
	}, nil
}

// Abort discards the file: nothing is stored under the key (an existing
// object is left as it was). Abort after Close or Abort does nothing.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.aborted.Store(true)
	// Cancel first: go-cloud's writers abort, rather than commit, when their
	// context is done at Close.
	w.cancel()
	if !w.handedIn {
		_ = w.handIn()
	}
	_ = w.bw.Close()
	if w.s3 != nil {
		w.s3.abortMultipart(w.parent)
	}
}

// summer counts and hashes the bytes on their way to the blob writer.
type summer struct {
	dst io.Writer
	h   hash.Hash
	n   int64 // bytes stored
}

func (s *summer) Write(p []byte) (int, error) {
	n, err := s.dst.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	return n, err
}

// syncCommitted makes a file that fileblob has just renamed into place
// durable: its sidecar attributes file and the directories from the file's
// up to the bucket root (one per "/" in key, plus the root). tmpName is the
// temporary file's name and tmp its identity. With fileblob's no_tmp_dir
// (which Open sets) the temporary file sits next to the final one, named
// <final>.<hex>.tmp; otherwise the final directory is unknown and only the
// data, already synced, is durable.
func syncCommitted(tmpName string, tmp os.FileInfo, key string) error {
	base, ok := strings.CutSuffix(tmpName, ".tmp")
	if !ok {
		return nil
	}
	i := strings.LastIndexByte(base, '.')
	if i < 0 {
		return nil
	}
	final := base[:i]
	fi, err := os.Stat(final)
	if err != nil || !os.SameFile(fi, tmp) {
		return nil
	}
	if err := syncPath(final + ".attrs"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(final)
	for range strings.Count(key, "/") + 1 {
		if err := syncPath(dir); err != nil {
			return err
		}
		dir = filepath.Dir(dir)
	}
	return nil
}

// syncPath fsyncs the file or directory at path.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
