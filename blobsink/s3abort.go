package blobsink

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
)

// abortTimeout bounds the clean-up of an aborted S3 multipart upload.
const abortTimeout = 30 * time.Second

// s3Upload identifies the S3 object an s3blob writer uploads, so that an
// aborted multipart upload can be cleaned up. s3blob aborts a write by
// context cancellation, and its transfer manager then sends
// AbortMultipartUpload with that same, cancelled, context: the request never
// leaves and the upload's parts stay stored (invisible, but billed) until a
// bucket lifecycle rule removes them.
type s3Upload struct {
	uploads *Uploads // of the whole bucket: key is the raw S3 key
	key     string   // as sent to S3, after s3blob's escaping and the URL's prefix
}

// newS3Upload returns the S3 upload behind a writer of b, given the
// BeforeWrite as function, or nil for other backends.
func newS3Upload(b *blob.Bucket, as func(any) bool) *s3Upload {
	var in *transfermanager.UploadObjectInput
	if !as(&in) || in == nil {
		return nil
	}
	var client *s3.Client
	if !b.As(&client) {
		return nil
	}
	return &s3Upload{uploads: &Uploads{client: client, bucket: aws.ToString(in.Bucket)}, key: aws.ToString(in.Key)}
}

// abortMultipart aborts every unfinished multipart upload of the key. Keys
// belong to one export job, so no other writer's upload is touched. It is
// best effort: an upload it misses is left to the janitor.
func (u *s3Upload) abortMultipart(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_ = u.uploads.list(ctx, u.key, func(up Upload) error {
		if up.Key == u.key {
			_ = u.uploads.Abort(ctx, up)
		}
		return nil
	})
}
