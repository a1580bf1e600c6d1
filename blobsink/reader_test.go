package blobsink_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"hookd/blobsink"
)

// TestNewReader: a file reads back as the NDJSON written, whatever its
// encoding; a missing key is ErrNotFound; a file that is not in the
// encoding named is a read error.
func TestNewReader(t *testing.T) {
	ls := lines(4, 300)
	want := bytes.Join(ls, nil)
	forEachBackend(t, func(t *testing.T, tg *target) {
		cid := customer()
		cleanPrefix(t, tg.bucket, cid+"/")
		for _, enc := range []blobsink.Encoding{blobsink.None, blobsink.Gzip, blobsink.Zstd} {
			key := blobsink.Key(cid, "sub", "job", enc)
			write(t, tg.bucket, key, enc, ls)
			r, err := blobsink.NewReader(t.Context(), tg.bucket, key, enc)
			if err != nil {
				t.Fatalf("NewReader(%s): %v", enc, err)
			}
			got, err := io.ReadAll(r)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: got %d bytes, %v; want the %d bytes written", enc, len(got), err, len(want))
			}
		}
		if _, err := blobsink.NewReader(t.Context(), tg.bucket, cid+"/sub/missing.ndjson", blobsink.None); !errors.Is(err, blobsink.ErrNotFound) {
			t.Errorf("a missing key: got %v, want ErrNotFound", err)
		}
		plainKey := blobsink.Key(cid, "sub", "job", blobsink.None)
		for _, enc := range []blobsink.Encoding{blobsink.Gzip, blobsink.Zstd} {
			r, err := blobsink.NewReader(t.Context(), tg.bucket, plainKey, enc)
			if err == nil {
				_, err = io.ReadAll(r)
				r.Close()
			}
			if err == nil {
				t.Errorf("a plain file read as %s: got no error", enc)
			}
		}
	})
}
