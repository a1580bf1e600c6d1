package blobsink

import (
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"gocloud.dev/blob"
)

// NewReader opens the export file under key and returns its NDJSON,
// decompressed as enc says. A missing key gives an error wrapping
// ErrNotFound; a file that is not in enc gives a read error. The caller
// closes the reader.
func NewReader(ctx context.Context, b *blob.Bucket, key string, enc Encoding) (io.ReadCloser, error) {
	if !enc.valid() {
		return nil, fmt.Errorf("blobsink: unknown encoding %q", string(enc))
	}
	r, err := OpenRange(ctx, b, key, 0, -1)
	if err != nil {
		return nil, err
	}
	d, err := Decompress(r, enc)
	if err != nil {
		r.Close()
		return nil, err
	}
	return readCloser{d, func() error { d.Close(); return r.Close() }}, nil
}

// Decompress returns the bytes of r, stored in enc, uncompressed. Closing
// it releases the decoder, not r. The decoders are klauspost/compress's,
// the library the writer compresses with.
func Decompress(r io.Reader, enc Encoding) (io.ReadCloser, error) {
	switch enc {
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("blobsink: not a gzip file: %w", err)
		}
		return zr, nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, err
		}
		return readCloser{zr, func() error { zr.Close(); return nil }}, nil
	}
	return io.NopCloser(r), nil
}

// zstdMaxWindow bounds the memory a zstd file can make its reader take:
// hookd writes a window of zstdWindow; other tools' default is 8 MiB.
const zstdMaxWindow = 8 << 20

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
