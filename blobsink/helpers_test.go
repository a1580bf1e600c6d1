package blobsink_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"gocloud.dev/blob"

	"hookd/blobsink"
)

// target is one bucket under test.
type target struct {
	name   string
	url    string
	bucket *blob.Bucket
	dir    string // root directory of a file:// bucket, "" otherwise
}

// runID keeps keys of different test runs apart on the shared S3 server.
var runID = strconv.FormatInt(time.Now().UnixNano(), 36)

var seq atomic.Int64

// customer returns a customer id no other test (or run) uses, so every test
// owns the prefix <customer>/ of the bucket.
func customer() string {
	return fmt.Sprintf("c-%s-%d", runID, seq.Add(1))
}

// forEachBackend runs fn against memblob, fileblob and, when
// HOOKD_TEST_S3_URL is set, the S3 server it names.
func forEachBackend(t *testing.T, fn func(t *testing.T, tg *target)) {
	t.Helper()
	t.Run("mem", func(t *testing.T) {
		fn(t, openTarget(t, "mem", "mem://", ""))
	})
	t.Run("file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "exports")
		fn(t, openTarget(t, "file", "file://"+dir, dir))
	})
	t.Run("s3", func(t *testing.T) {
		u := os.Getenv("HOOKD_TEST_S3_URL")
		if u == "" {
			if os.Getenv("HOOKD_REQUIRE_EXTERNAL") == "1" {
				t.Fatal("HOOKD_TEST_S3_URL is not set and HOOKD_REQUIRE_EXTERNAL=1: run the tests under .ci/with-versitygw.sh")
			}
			t.Skip("HOOKD_TEST_S3_URL is not set: no S3 server (run under .ci/with-versitygw.sh)")
		}
		fn(t, openTarget(t, "s3", u, ""))
	})
}

func openTarget(t *testing.T, name, url, dir string) *target {
	t.Helper()
	b, err := blobsink.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("closing bucket: %v", err)
		}
	})
	return &target{name: name, url: url, bucket: b, dir: dir}
}

// cleanPrefix removes everything under prefix when the test ends.
func cleanPrefix(t *testing.T, b *blob.Bucket, prefix string) {
	t.Helper()
	t.Cleanup(func() {
		ctx := context.Background()
		var keys []string
		if err := blobsink.ListPrefix(ctx, b, prefix, func(key string, _ time.Time, _ int64) error {
			keys = append(keys, key)
			return nil
		}); err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		if _, err := blobsink.DeleteKeys(ctx, b, keys); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// lines returns n NDJSON lines shaped like exported SET claims (about 600
// bytes each), the same for the same seed.
func lines(seed uint64, n int) [][]byte {
	r := rand.New(rand.NewPCG(seed, 42))
	out := make([][]byte, n)
	var buf []byte
	for i := range out {
		buf = appendLine(buf[:0], r, i)
		out[i] = slices.Clone(buf)
	}
	return out
}

func appendLine(buf []byte, r *rand.Rand, i int) []byte {
	id := func() string {
		return fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
	}
	buf = fmt.Appendf(buf, `{"iss":"https://hookd.example.com/","iat":%d,"jti":"%s","aud":"https://listener.example.com/hooks/%d","txn":"%s","toe":%d,`,
		1700000000+i, id(), r.IntN(50), id(), 1700000000+i-r.IntN(600))
	buf = fmt.Appendf(buf, `"events":{"https://schemas.forgerock.com/events/managed/user/update":{"subject":{"id":"%s","type":"managed/user"},`, id())
	buf = fmt.Appendf(buf, `"attributes":{"userName":"user%d","mail":"user%d@example.com","givenName":"Given%d","sn":"Family%d","telephoneNumber":"+1555%07d",`,
		r.IntN(1e6), r.IntN(1e6), r.IntN(1e4), r.IntN(1e4), r.IntN(1e7))
	buf = fmt.Appendf(buf, `"accountStatus":"active","preferences":{"updates":%t,"marketing":%t},"lastChanged":{"date":"2026-11-%02dT%02d:%02d:%02dZ"},"revision":"%d-%s"}}}}`,
		r.IntN(2) == 0, r.IntN(2) == 0, 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000), id()[:12])
	return append(buf, '\n')
}

// write stores ls under key with enc, in writes of 1 to 3 lines, and
// commits the file.
func write(t *testing.T, b *blob.Bucket, key string, enc blobsink.Encoding, ls [][]byte) blobsink.Info {
	t.Helper()
	w, err := blobsink.NewWriter(t.Context(), b, key, enc)
	if err != nil {
		t.Fatalf("NewWriter(%s): %v", key, err)
	}
	var chunk []byte
	for i, l := range ls {
		chunk = append(chunk, l...)
		if i%3 == 0 || i == len(ls)-1 {
			if _, err := w.Write(chunk); err != nil {
				w.Abort()
				t.Fatalf("Write: %v", err)
			}
			chunk = chunk[:0]
		}
	}
	info, err := w.Close()
	if err != nil {
		t.Fatalf("Close(%s): %v", key, err)
	}
	return info
}

// readAll returns the stored bytes of key.
func readAll(t *testing.T, b *blob.Bucket, key string) []byte {
	t.Helper()
	r, err := blobsink.OpenRange(t.Context(), b, key, 0, -1)
	if err != nil {
		t.Fatalf("OpenRange(%s): %v", key, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return data
}

func decode(t *testing.T, enc blobsink.Encoding, stored []byte) []byte {
	t.Helper()
	var r io.Reader
	switch enc {
	case blobsink.None:
		return stored
	case blobsink.Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(stored))
		if err != nil {
			t.Fatalf("gzip.NewReader: %v", err)
		}
		r = zr
	case blobsink.Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(stored))
		if err != nil {
			t.Fatalf("zstd.NewReader: %v", err)
		}
		defer zr.Close()
		r = zr
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompressing %s: %v", enc, err)
	}
	return data
}

func etagOf(data []byte) string {
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

var encodings = []blobsink.Encoding{blobsink.None, blobsink.Gzip, blobsink.Zstd}

// filesUnder lists the regular files under dir, relative to it.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	slices.Sort(files)
	return files
}
