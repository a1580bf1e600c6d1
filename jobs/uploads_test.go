package jobs

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"hookd/blobsink"
	"hookd/store"
)

// TestAbortAbandonedUploads: the janitor aborts the unfinished multipart
// uploads of export files that no write is under way for (a crash cut them
// off), and keeps the uploads of active jobs, young uploads and keys
// outside the export layout. The other backends have no uploads.
func TestAbortAbandonedUploads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		db, clk := openStore(t)
		uploads, err := blobsink.NewUploads(be.url, be.bucket)
		if err != nil {
			t.Fatal(err)
		}
		c := &ExportCleaner{DB: db, Bucket: be.bucket, Retention: 7 * 24 * time.Hour, Uploads: uploads}
		if uploads == nil {
			if be.name == "s3" {
				t.Fatal("NewUploads of an s3 bucket: got nil")
			}
			if n, err := c.AbortAbandonedUploads(t.Context()); n != 0 || err != nil {
				t.Errorf("AbortAbandonedUploads on %s: got %d, %v, want 0, nil", be.name, n, err)
			}
			return
		}

		// Raw uploads, as a writer cut off by a crash leaves them.
		var client *s3.Client
		if !be.bucket.As(&client) {
			t.Fatal("no S3 client")
		}
		u, _ := url.Parse(be.url)
		bucket, prefix := u.Host, u.Query().Get("prefix")
		start := func(key string) {
			t.Helper()
			out, err := client.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(prefix + key)})
			if err != nil {
				t.Fatalf("CreateMultipartUpload: %v", err)
			}
			if _, err := client.UploadPart(t.Context(), &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(prefix + key),
				UploadId: out.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("a part")}); err != nil {
				t.Fatalf("UploadPart: %v", err)
			}
		}
		s := newSub(t, db, false)
		addFailed(t, db, s, 1)
		active, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0)
		if err != nil {
			t.Fatal(err)
		}
		activeKey := blobsink.Key(s.CustomerID.String(), s.ID.String(), active.ID.String(), blobsink.None)
		abandonedKey := blobsink.Key(s.CustomerID.String(), s.ID.String(), uuid.NewString(), blobsink.Zstd)
		otherKey := "backups/hookd.db"
		// A job that ended (failed while the store was down, say) has no
		// writer: its upload goes at once, however young.
		s2 := newSub(t, db, false)
		addFailed(t, db, s2, 1)
		ended, err := db.CreateExport(s2.CustomerID, s2.ID, "", store.ScopeSubscription, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.FailExport(ended.ID, store.FailureStorageUnavailable, "test"); err != nil {
			t.Fatal(err)
		}
		endedKey := blobsink.Key(s2.CustomerID.String(), s2.ID.String(), ended.ID.String(), blobsink.None)
		for _, k := range []string{activeKey, abandonedKey, otherKey, endedKey} {
			start(k)
		}
		left := func() []string {
			t.Helper()
			var keys []string
			if err := uploads.List(t.Context(), func(up blobsink.Upload) error {
				if up.Initiated.IsZero() || up.ID == "" {
					t.Errorf("upload %+v: want its id and start time", up)
				}
				keys = append(keys, up.Key)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			slices.Sort(keys)
			return keys
		}
		t.Cleanup(func() {
			_ = uploads.List(t.Context(), func(up blobsink.Upload) error { return uploads.Abort(t.Context(), up) })
		})
		all := []string{activeKey, abandonedKey, otherKey, endedKey}
		slices.Sort(all)
		if got := left(); !slices.Equal(got, all) {
			t.Fatalf("uploads listed: got %q, want %q", got, all)
		}

		// Young uploads are kept (their writer may be running), unless
		// their job has ended.
		if n, err := c.AbortAbandonedUploads(t.Context()); n != 1 || err != nil {
			t.Errorf("with young uploads: got %d, %v, want 1 (the ended job's), nil", n, err)
		}
		want0 := []string{activeKey, abandonedKey, otherKey}
		slices.Sort(want0)
		if got := left(); !slices.Equal(got, want0) {
			t.Errorf("young uploads left: got %q, want %q", got, want0)
		}
		clk.add(2 * DefaultOrphanAge)
		if n, err := c.AbortAbandonedUploads(t.Context()); n != 1 || err != nil {
			t.Errorf("with old uploads: got %d aborted, %v, want 1, nil", n, err)
		}
		want := []string{activeKey, otherKey}
		slices.Sort(want)
		if got := left(); !slices.Equal(got, want) {
			t.Errorf("uploads left: got %q, want %q (the active job's and the key outside the export layout)", got, want)
		}
	})
}
