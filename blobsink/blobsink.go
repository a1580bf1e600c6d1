// Package blobsink moves export files (NDJSON, optionally gzip or zstd
// compressed) to and from a gocloud.dev *blob.Bucket.
//
// Buckets are opened with Open from a URL: file:// for a local directory,
// s3:// for S3 or any S3-compatible server (through the URL's endpoint,
// use_path_style, region and disable_https parameters), mem:// for tests.
// The package never wraps *blob.Bucket; every helper takes one.
//
// An export file is written with NewWriter and committed by Writer.Close:
// until Close returns without error no object is reachable under the key,
// and Writer.Abort (or cancelling the context given to NewWriter) discards
// the write. Close returns the file's Info (stored size, strong ETag, line
// count); the caller keeps it with the job, because the bucket's own ETag is
// not a hash of the file on every backend.
//
// # Durability and crashes
//
// On a file:// bucket Close makes the file durable before it returns: the
// temporary file is fsynced before it is renamed into place, and after the
// rename the file's sidecar attributes and every directory from the file's
// directory up to the bucket root are fsynced. So once Close has returned,
// the file survives a crash, and before that the key either does not exist
// or (if the crash hit between the rename and the directory fsync) holds a
// complete file. The caller marks the job completed in its store only after
// Close returns; a file whose job is not completed is an orphan, removed
// with Delete when the job is failed at restart or by the janitor (see
// ListPrefix and ParseKey). Open sets fileblob's no_tmp_dir so the temporary
// file lives next to its final name (a rename never crosses file systems);
// a temporary file stranded by a crash is listed by ListPrefix under a key
// for which ParseKey reports false, and is removed by age like any other
// file.
//
// On S3 an object appears only when its upload completes, so a crash leaves
// at most an unfinished multipart upload, which is invisible; when a write
// is aborted the Writer also aborts that upload itself. A bucket lifecycle
// rule that aborts incomplete multipart uploads after a day is still
// advisable for uploads cut off by a crash.
package blobsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// URLs
	_ "gocloud.dev/blob/memblob"  // mem:// URLs
	_ "gocloud.dev/blob/s3blob"   // s3:// URLs
	"gocloud.dev/gcerrors"
)

// ErrNotFound is returned (wrapped) when a key does not exist in the bucket.
var ErrNotFound = errors.New("blobsink: not found")

// ContentType is the media type of every export file.
const ContentType = "application/x-ndjson"

// Open opens the bucket at url. Supported schemes are file, s3 and mem.
//
// For file URLs the directory is created when missing (fileblob's
// create_dir) and temporary files are kept next to their final names
// (no_tmp_dir); a file URL is either absolute (file:///var/lib/hookd/exports)
// or relative with the host "." (file://./data/exports). The URL's other
// query parameters are passed to the driver unchanged. The caller closes the
// bucket.
func Open(ctx context.Context, rawURL string) (*blob.Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("blobsink: parse bucket URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "." && u.Host != "localhost" {
			return nil, fmt.Errorf("blobsink: file URL %q has host %q: use file:///absolute/path or file://./relative/path", rawURL, u.Host)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("blobsink: file URL %q has no directory", rawURL)
		}
		if u.Host == "localhost" {
			u.Host = ""
		}
		q := u.Query()
		if q.Get("create_dir") == "" {
			q.Set("create_dir", "1")
		}
		if q.Get("no_tmp_dir") == "" {
			q.Set("no_tmp_dir", "1")
		}
		u.RawQuery = q.Encode()
	case "s3", "mem":
	default:
		return nil, fmt.Errorf("blobsink: unsupported bucket URL scheme %q (want file, s3 or mem)", u.Scheme)
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("blobsink: open bucket: %w", err)
	}
	return b, nil
}

// Encoding is the compression of an export file.
type Encoding string

// The supported encodings. The values are the HTTP Content-Encoding names.
const (
	None Encoding = ""
	Gzip Encoding = "gzip"
	Zstd Encoding = "zstd"
)

// ParseEncoding parses a configured encoding: "" or "none", "gzip", "zstd"
// (case-insensitive).
func ParseEncoding(s string) (Encoding, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none", "identity":
		return None, nil
	case "gzip":
		return Gzip, nil
	case "zstd":
		return Zstd, nil
	}
	return None, fmt.Errorf("blobsink: unknown encoding %q (want none, gzip or zstd)", s)
}

// String returns the encoding's name, "none" for None.
func (e Encoding) String() string {
	if e == None {
		return "none"
	}
	return string(e)
}

// Suffix returns the file name suffix of the encoding: ".ndjson",
// ".ndjson.gz" or ".ndjson.zst".
func (e Encoding) Suffix() string {
	switch e {
	case Gzip:
		return ".ndjson.gz"
	case Zstd:
		return ".ndjson.zst"
	}
	return ".ndjson"
}

func (e Encoding) valid() bool {
	return e == None || e == Gzip || e == Zstd
}

// Key returns the bucket key of an export file:
// <customerId>/<subscriptionId>/<jobId>.ndjson[.gz|.zst].
func Key(customerID, subscriptionID, jobID string, enc Encoding) string {
	return customerID + "/" + subscriptionID + "/" + jobID + enc.Suffix()
}

// ParseKey splits a key made by Key. It reports false for any other key,
// such as a temporary file stranded by a crash.
func ParseKey(key string) (customerID, subscriptionID, jobID string, enc Encoding, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", "", None, false
	}
	name := parts[2]
	for _, e := range []Encoding{Gzip, Zstd, None} {
		if id, found := strings.CutSuffix(name, e.Suffix()); found {
			if id == "" || strings.Contains(id, ".") {
				return "", "", "", None, false
			}
			return parts[0], parts[1], id, e, true
		}
	}
	return "", "", "", None, false
}

// Delete removes key from b. A missing key is not an error.
func Delete(ctx context.Context, b *blob.Bucket, key string) error {
	if err := b.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("blobsink: delete %s: %w", key, err)
	}
	return nil
}

// DeleteKeys removes keys from b one after another, stopping at the first
// error or when ctx is done. Missing keys are not errors. It returns how
// many keys it went through without error.
func DeleteKeys(ctx context.Context, b *blob.Bucket, keys []string) (int, error) {
	for i, key := range keys {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		if err := Delete(ctx, b, key); err != nil {
			return i, err
		}
	}
	return len(keys), nil
}

// ListPrefix calls fn for every object whose key starts with prefix, in key
// order, with its modification time and stored size. Directories are not
// reported. An error from fn stops the listing and is returned. fn must not
// delete objects: collect keys, then delete them with DeleteKeys.
func ListPrefix(ctx context.Context, b *blob.Bucket, prefix string, fn func(key string, modTime time.Time, size int64) error) error {
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("blobsink: list %q: %w", prefix, err)
		}
		if obj.IsDir {
			continue
		}
		if err := fn(obj.Key, obj.ModTime, obj.Size); err != nil {
			return err
		}
	}
}

// OpenRange opens length bytes of key starting at offset off; a negative
// length reads to the end. The bytes are the stored ones (still compressed
// for a compressed file). A missing key gives an error wrapping ErrNotFound.
// The caller closes the reader.
func OpenRange(ctx context.Context, b *blob.Bucket, key string, off, length int64) (io.ReadCloser, error) {
	r, err := b.NewRangeReader(ctx, key, off, length, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("blobsink: open %s: %w", key, err)
	}
	return r, nil
}

// Stat returns the attributes of key (size, modification time, content type
// and encoding). A missing key gives an error wrapping ErrNotFound. The
// attributes' ETag is the backend's, not Info.ETag.
func Stat(ctx context.Context, b *blob.Bucket, key string) (*blob.Attributes, error) {
	a, err := b.Attributes(ctx, key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("blobsink: stat %s: %w", key, err)
	}
	return a, nil
}
