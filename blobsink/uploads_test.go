package blobsink_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"hookd/blobsink"
)

// TestUploads lists and aborts an unfinished multipart upload on S3; the
// other backends have none.
func TestUploads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, tg *target) {
		up, err := blobsink.NewUploads(tg.url, tg.bucket)
		if err != nil {
			t.Fatal(err)
		}
		if tg.name != "s3" {
			if up != nil {
				t.Fatalf("NewUploads of a %s bucket: got %+v, want nil", tg.name, up)
			}
			if err := up.List(t.Context(), func(blobsink.Upload) error { t.Error("got an upload, want none"); return nil }); err != nil {
				t.Errorf("List: %v", err)
			}
			return
		}
		var client *s3.Client
		if !tg.bucket.As(&client) {
			t.Fatal("no S3 client")
		}
		u, _ := url.Parse(tg.url)
		key := blobsink.Key(customer(), "sub", "job", blobsink.Gzip)
		out, err := client.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: aws.String(u.Host), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("CreateMultipartUpload: %v", err)
		}
		if _, err := client.UploadPart(t.Context(), &s3.UploadPartInput{Bucket: aws.String(u.Host), Key: aws.String(key),
			UploadId: out.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part")}); err != nil {
			t.Fatalf("UploadPart: %v", err)
		}
		find := func() (blobsink.Upload, bool) {
			t.Helper()
			var found blobsink.Upload
			ok := false
			if err := up.List(t.Context(), func(x blobsink.Upload) error {
				if x.Key == key {
					found, ok = x, true
				}
				return nil
			}); err != nil {
				t.Fatalf("List: %v", err)
			}
			return found, ok
		}
		got, ok := find()
		if !ok || got.ID != aws.ToString(out.UploadId) || got.Initiated.IsZero() {
			t.Fatalf("List: got %+v (found %v), want the upload %s with its start time", got, ok, aws.ToString(out.UploadId))
		}
		if err := up.Abort(t.Context(), got); err != nil {
			t.Fatalf("Abort: %v", err)
		}
		if _, ok := find(); ok {
			t.Errorf("the upload is still listed after Abort")
		}
	})
}
