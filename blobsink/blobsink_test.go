package blobsink_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"hookd/blobsink"
)

func TestWriteReadBack(t *testing.T) {
	// 32,000 lines are about 19 MB: uncompressed, past the S3 multipart
	// threshold (16 MiB), so S3 commits a multipart upload of three parts.
	ls := lines(1, 32000)
	want := bytes.Join(ls, nil)
	forEachBackend(t, func(t *testing.T, tg *target) {
		for _, enc := range encodings {
			t.Run(enc.String(), func(t *testing.T) {
				cid := customer()
				cleanPrefix(t, tg.bucket, cid+"/")
				key := blobsink.Key(cid, "sub-1", "job-1", enc)
				info := write(t, tg.bucket, key, enc, ls)

				if info.Key != key || info.Encoding != enc || info.Lines != int64(len(ls)) {
					t.Errorf("got Info{Key:%q Encoding:%q Lines:%d}, want {%q %q %d}", info.Key, info.Encoding, info.Lines, key, enc, len(ls))
				}
				stored := readAll(t, tg.bucket, key)
				if info.Size != int64(len(stored)) {
					t.Errorf("got Info.Size %d, want %d stored bytes", info.Size, len(stored))
				}
				if want := etagOf(stored); info.ETag != want {
					t.Errorf("got ETag %s, want %s", info.ETag, want)
				}
				if got := decode(t, enc, stored); !bytes.Equal(got, want) {
					t.Errorf("got %d bytes back (%d lines), want %d bytes (%d lines)", len(got), bytes.Count(got, []byte{'\n'}), len(want), len(ls))
				}
				if enc != blobsink.None && len(stored) > len(want)/2 {
					t.Errorf("got %d compressed bytes, want at most half of %d", len(stored), len(want))
				}

				a, err := blobsink.Stat(t.Context(), tg.bucket, key)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				if a.Size != info.Size {
					t.Errorf("got Stat size %d, want %d", a.Size, info.Size)
				}
				if a.ContentType != blobsink.ContentType {
					t.Errorf("got content type %q, want %q", a.ContentType, blobsink.ContentType)
				}
				if a.ContentEncoding != string(enc) {
					t.Errorf("got content encoding %q, want %q", a.ContentEncoding, string(enc))
				}
			})
		}
	})
}

func TestEmptyAndUnterminated(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tg *target) {
		cid := customer()
		cleanPrefix(t, tg.bucket, cid+"/")
		for _, enc := range encodings {
			key := blobsink.Key(cid, "sub", "empty", enc)
			info := write(t, tg.bucket, key, enc, nil)
			if info.Lines != 0 {
				t.Errorf("%s: got %d lines for an empty file, want 0", enc, info.Lines)
			}
			stored := readAll(t, tg.bucket, key)
			if got := decode(t, enc, stored); len(got) != 0 {
				t.Errorf("%s: got %q back, want nothing", enc, got)
			}
			if info.ETag != etagOf(stored) || info.Size != int64(len(stored)) {
				t.Errorf("%s: got ETag %s size %d, want %s %d", enc, info.ETag, info.Size, etagOf(stored), len(stored))
			}
		}
		key := blobsink.Key(cid, "sub", "unterminated", blobsink.None)
		info := write(t, tg.bucket, key, blobsink.None, [][]byte{[]byte("{}\n{}\n{}")})
		if info.Lines != 3 {
			t.Errorf("got %d lines, want 3", info.Lines)
		}
	})
}

func TestAbort(t *testing.T) {
	// About 19 MB: past the S3 multipart threshold (16 MiB), so uncompressed
	// a multipart upload is under way when the write is aborted.
	ls := lines(2, 32000)
	forEachBackend(t, func(t *testing.T, tg *target) {
		for _, enc := range encodings {
			t.Run(enc.String(), func(t *testing.T) {
				cid := customer()
				cleanPrefix(t, tg.bucket, cid+"/")

				// Abort after writing.
				key := blobsink.Key(cid, "sub", "aborted", enc)
				w, err := blobsink.NewWriter(t.Context(), tg.bucket, key, enc)
				if err != nil {
					t.Fatalf("NewWriter: %v", err)
				}
				for _, l := range ls {
					if _, err := w.Write(l); err != nil {
						t.Fatalf("Write: %v", err)
					}
				}
				w.Abort()
				w.Abort() // a second Abort does nothing
				if _, err := w.Close(); err == nil {
					t.Error("got no error from Close after Abort, want one")
				}
				if _, err := w.Write(ls[0]); err == nil {
					t.Error("got no error from Write after Abort, want one")
				}

				// Cancel the context, go on writing (the backend may fail
				// the writes), then Close.
				ctx, cancel := context.WithCancel(t.Context())
				key2 := blobsink.Key(cid, "sub", "canceled", enc)
				w, err = blobsink.NewWriter(ctx, tg.bucket, key2, enc)
				if err != nil {
					t.Fatalf("NewWriter: %v", err)
				}
				for _, l := range ls[:10] {
					if _, err := w.Write(l); err != nil {
						t.Fatalf("Write: %v", err)
					}
				}
				cancel()
				for _, l := range ls {
					if _, err := w.Write(l); err != nil {
						break
					}
				}
				if _, err := w.Close(); err == nil {
					t.Error("got no error from Close with a canceled context, want one")
				}

				// Cancel the context before anything is written.
				ctx, cancel = context.WithCancel(t.Context())
				key3 := blobsink.Key(cid, "sub", "canceled-early", enc)
				w, err = blobsink.NewWriter(ctx, tg.bucket, key3, enc)
				if err != nil {
					t.Fatalf("NewWriter: %v", err)
				}
				cancel()
				if _, err := w.Close(); err == nil {
					t.Error("got no error from Close with a context canceled at once, want one")
				}

				for _, k := range []string{key, key2, key3} {
					if _, err := blobsink.Stat(t.Context(), tg.bucket, k); !errors.Is(err, blobsink.ErrNotFound) {
						t.Errorf("Stat(%s) after abort: got error %v, want ErrNotFound", k, err)
					}
				}
				var left []string
				if err := blobsink.ListPrefix(t.Context(), tg.bucket, cid+"/", func(key string, _ time.Time, _ int64) error {
					left = append(left, key)
					return nil
				}); err != nil {
					t.Fatalf("ListPrefix: %v", err)
				}
				if len(left) != 0 {
					t.Errorf("got objects %q after abort, want none", left)
				}
				if tg.dir != "" {
					if files := filesUnder(t, tg.dir); len(files) != 0 {
						t.Errorf("got files %q after abort, want none", files)
					}
				}
				var client *s3.Client
				if tg.bucket.As(&client) {
					bucket := strings.TrimPrefix(strings.SplitN(os.Getenv("HOOKD_TEST_S3_URL"), "?", 2)[0], "s3://")
					out, err := client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{
						Bucket: &bucket,
						Prefix: aws.String(cid + "/"),
					})
					if err != nil {
						t.Fatalf("ListMultipartUploads: %v", err)
					}
					if len(out.Uploads) != 0 {
						t.Errorf("got %d multipart uploads left after abort, want none", len(out.Uploads))
					}
				}
			})
		}
	})
}

func TestOpenRange(t *testing.T) {
	ls := lines(3, 500)
	forEachBackend(t, func(t *testing.T, tg *target) {
		cid := customer()
		cleanPrefix(t, tg.bucket, cid+"/")
		key := blobsink.Key(cid, "sub", "job", blobsink.Gzip)
		write(t, tg.bucket, key, blobsink.Gzip, ls)
		stored := readAll(t, tg.bucket, key)
		n := int64(len(stored))
		tests := []struct {
			off, length int64
			want        []byte
		}{
			{0, 10, stored[:10]},
			{100, 1000, stored[100:1100]},
			{n - 5, -1, stored[n-5:]},
			{n - 5, 100, stored[n-5:]},
			{0, -1, stored},
		}
		for _, tt := range tests {
			r, err := blobsink.OpenRange(t.Context(), tg.bucket, key, tt.off, tt.length)
			if err != nil {
				t.Fatalf("OpenRange(%d, %d): %v", tt.off, tt.length, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatalf("reading range (%d, %d): %v", tt.off, tt.length, err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("range (%d, %d): got %d bytes, want %d", tt.off, tt.length, len(got), len(tt.want))
			}
		}
		_, err := blobsink.OpenRange(t.Context(), tg.bucket, cid+"/sub/missing.ndjson", 0, -1)
		if !errors.Is(err, blobsink.ErrNotFound) {
			t.Errorf("OpenRange of a missing key: got error %v, want ErrNotFound", err)
		}
	})
}

func TestDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tg *target) {
		cid := customer()
		cleanPrefix(t, tg.bucket, cid+"/")
		if err := blobsink.Delete(t.Context(), tg.bucket, cid+"/sub/missing.ndjson"); err != nil {
			t.Errorf("Delete of a missing key: got %v, want nil", err)
		}
		key := blobsink.Key(cid, "sub", "job", blobsink.None)
		write(t, tg.bucket, key, blobsink.None, lines(4, 10))
		if err := blobsink.Delete(t.Context(), tg.bucket, key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := blobsink.Stat(t.Context(), tg.bucket, key); !errors.Is(err, blobsink.ErrNotFound) {
			t.Errorf("Stat after Delete: got error %v, want ErrNotFound", err)
		}
		if err := blobsink.Delete(t.Context(), tg.bucket, key); err != nil {
			t.Errorf("second Delete: got %v, want nil", err)
		}
	})
}

func TestListPrefixAndDeleteKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tg *target) {
		cid, other := customer(), customer()
		cleanPrefix(t, tg.bucket, cid+"/")
		cleanPrefix(t, tg.bucket, other+"/")
		before := time.Now().Add(-time.Minute)
		sizes := map[string]int64{}
		for i, enc := range encodings {
			key := blobsink.Key(cid, "sub-"+strconv.Itoa(i%2), "job-"+strconv.Itoa(i), enc)
			sizes[key] = write(t, tg.bucket, key, enc, lines(uint64(i), 20)).Size
		}
		write(t, tg.bucket, blobsink.Key(other, "sub-0", "job-9", blobsink.None), blobsink.None, nil)

		var got []string
		err := blobsink.ListPrefix(t.Context(), tg.bucket, cid+"/", func(key string, modTime time.Time, size int64) error {
			got = append(got, key)
			if size != sizes[key] {
				t.Errorf("%s: got size %d, want %d", key, size, sizes[key])
			}
			if modTime.Before(before) || modTime.After(time.Now().Add(time.Minute)) {
				t.Errorf("%s: got modification time %v, want about now", key, modTime)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ListPrefix: %v", err)
		}
		want := make([]string, 0, len(sizes))
		for k := range sizes {
			want = append(want, k)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("got keys %q, want %q", got, want)
		}

		stop := errors.New("stop")
		calls := 0
		err = blobsink.ListPrefix(t.Context(), tg.bucket, cid+"/", func(string, time.Time, int64) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("got error %v after %d calls, want the callback's error after 1", err, calls)
		}

		n, err := blobsink.DeleteKeys(t.Context(), tg.bucket, append(want, cid+"/sub-0/missing.ndjson"))
		if err != nil || n != len(want)+1 {
			t.Fatalf("DeleteKeys: got (%d, %v), want (%d, nil)", n, err, len(want)+1)
		}
		got = got[:0]
		if err := blobsink.ListPrefix(t.Context(), tg.bucket, cid+"/", func(key string, _ time.Time, _ int64) error {
			got = append(got, key)
			return nil
		}); err != nil {
			t.Fatalf("ListPrefix: %v", err)
		}
		if len(got) != 0 {
			t.Errorf("got keys %q after DeleteKeys, want none", got)
		}
		if _, err := blobsink.Stat(t.Context(), tg.bucket, blobsink.Key(other, "sub-0", "job-9", blobsink.None)); err != nil {
			t.Errorf("the other customer's file: %v", err)
		}
	})
}

func TestWriterMisuse(t *testing.T) {
	b, err := blobsink.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := blobsink.NewWriter(t.Context(), b, "a/b/c.ndjson", blobsink.Encoding("brotli")); err == nil {
		t.Error("NewWriter with an unknown encoding: got no error, want one")
	}
	w, err := blobsink.NewWriter(t.Context(), b, "a/b/c.ndjson", blobsink.None)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err == nil {
		t.Error("second Close: got no error, want one")
	}
	if _, err := w.Write([]byte("{}\n")); err == nil {
		t.Error("Write after Close: got no error, want one")
	}
	w.Abort() // does nothing after Close
	if _, err := blobsink.Stat(t.Context(), b, "a/b/c.ndjson"); err != nil {
		t.Errorf("Abort after Close removed the file: %v", err)
	}
}
func TestFileDurability(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data", "exports") // does not exist yet
	b, err := blobsink.Open(t.Context(), "file://"+root)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()
	ls := lines(5, 1000)

	// While a file is written, its temporary file sits next to the final
	// name, where ListPrefix shows it under a key ParseKey rejects.
	w, err := blobsink.NewWriter(t.Context(), b, blobsink.Key("cust", "sub", "pending", blobsink.None), blobsink.None)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	var pending []string
	if err := blobsink.ListPrefix(t.Context(), b, "cust/", func(key string, _ time.Time, _ int64) error {
		pending = append(pending, key)
		return nil
	}); err != nil {
		t.Fatalf("ListPrefix: %v", err)
	}
	if len(pending) != 1 || !strings.HasPrefix(pending[0], "cust/sub/pending.ndjson.") || !strings.HasSuffix(pending[0], ".tmp") {
		t.Errorf("got keys %q while writing, want one cust/sub/pending.ndjson.*.tmp", pending)
	} else if _, _, _, _, ok := blobsink.ParseKey(pending[0]); ok {
		t.Errorf("ParseKey(%q): got ok, want not ok", pending[0])
	}
	w.Abort()

	for _, enc := range encodings {
		key := blobsink.Key("cust", "sub", "job-"+enc.String(), enc)
		info := write(t, b, key, enc, ls)
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(key)))
		if err != nil {
			t.Fatalf("the committed file: %v", err)
		}
		if etagOf(data) != info.ETag {
			t.Errorf("%s: got file hash %s, want ETag %s", key, etagOf(data), info.ETag)
		}
	}
	got := filesUnder(t, root)
	want := []string{
		"cust/sub/job-gzip.ndjson.gz", "cust/sub/job-gzip.ndjson.gz.attrs",
		"cust/sub/job-none.ndjson", "cust/sub/job-none.ndjson.attrs",
		"cust/sub/job-zstd.ndjson.zst", "cust/sub/job-zstd.ndjson.zst.attrs",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got files %q, want %q (no temporary files)", got, want)
	}
}

func TestOpen(t *testing.T) {
	t.Run("relative file URL", func(t *testing.T) {
		t.Chdir(t.TempDir())
		b, err := blobsink.Open(t.Context(), "file://./data/exports")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer b.Close()
		write(t, b, "c/s/j.ndjson", blobsink.None, lines(6, 3))
		if _, err := os.Stat(filepath.Join("data", "exports", "c", "s", "j.ndjson")); err != nil {
			t.Errorf("the file is not under the relative directory: %v", err)
		}
	})
	for _, url := range []string{
		"gs://bucket",
		"file://data/exports", // "data" would be a host, silently dropped
		"file://",
		"mem://\x00",
	} {
		if b, err := blobsink.Open(t.Context(), url); err == nil {
			b.Close()
			t.Errorf("Open(%q): got no error, want one", url)
		}
	}
}

func TestParseEncoding(t *testing.T) {
	tests := []struct {
		in   string
		want blobsink.Encoding
		ok   bool
	}{
		{"", blobsink.None, true},
		{"none", blobsink.None, true},
		{"gzip", blobsink.Gzip, true},
		{"GZIP", blobsink.Gzip, true},
		{"zstd", blobsink.Zstd, true},
		{"brotli", blobsink.None, false},
	}
	for _, tt := range tests {
		got, err := blobsink.ParseEncoding(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseEncoding(%q): got (%q, %v), want (%q, ok=%t)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestKey(t *testing.T) {
	for _, enc := range encodings {
		key := blobsink.Key("cust", "sub", "job", enc)
		if want := "cust/sub/job" + enc.Suffix(); key != want {
			t.Errorf("got key %q, want %q", key, want)
		}
		c, s, j, e, ok := blobsink.ParseKey(key)
		if !ok || c != "cust" || s != "sub" || j != "job" || e != enc {
			t.Errorf("ParseKey(%q): got (%q, %q, %q, %q, %t), want (cust, sub, job, %q, true)", key, c, s, j, e, ok, enc)
		}
	}
	if got := blobsink.Gzip.Suffix(); got != ".ndjson.gz" {
		t.Errorf("got gzip suffix %q, want .ndjson.gz", got)
	}
	for _, key := range []string{
		"cust/sub/job.ndjson.18a2b3c4d5e6f708.tmp",
		"cust/sub/job.json",
		"cust/job.ndjson",
		"a/cust/sub/job.ndjson",
		"cust/sub/.ndjson",
		"/sub/job.ndjson",
	} {
		if _, _, _, _, ok := blobsink.ParseKey(key); ok {
			t.Errorf("ParseKey(%q): got ok, want not ok", key)
		}
	}
}
