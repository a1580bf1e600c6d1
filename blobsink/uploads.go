package blobsink

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
)

// Upload is an unfinished S3 multipart upload: an object being written,
// or one whose writer was cut off by a crash, whose parts are stored
// (invisible, but billed) until it is completed or aborted.
type Upload struct {
	Key       string // the bucket's key, without the URL's prefix
	ID        string
	Initiated time.Time
}

// Uploads lists and aborts the unfinished multipart uploads of an S3
// bucket. A nil *Uploads (any other backend) has none.
type Uploads struct {
	client *s3.Client
	bucket string
	prefix string // the URL's prefix parameter: the bucket's keys start with it
}

// NewUploads returns the Uploads of b, which Open opened from rawURL; nil
// unless rawURL is an s3:// URL.
func NewUploads(rawURL string, b *blob.Bucket) (*Uploads, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("blobsink: parse bucket URL: %w", err)
	}
	if u.Scheme != "s3" {
		return nil, nil
	}
	var client *s3.Client
	if !b.As(&client) {
		return nil, fmt.Errorf("blobsink: the s3 bucket %q gives no S3 client", u.Host)
	}
	return &Uploads{client: client, bucket: u.Host, prefix: u.Query().Get("prefix")}, nil
}

// List calls fn for every unfinished multipart upload under the bucket's
// prefix, in key order. An error from fn stops the listing and is
// returned; fn may abort the upload it is given.
func (u *Uploads) List(ctx context.Context, fn func(Upload) error) error {
	return u.list(ctx, "", fn)
}

// list is List of the keys that start with keyPrefix.
func (u *Uploads) list(ctx context.Context, keyPrefix string, fn func(Upload) error) error {
	if u == nil {
		return nil
	}
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(u.bucket)}
	if p := u.prefix + keyPrefix; p != "" {
		in.Prefix = aws.String(p)
	}
	for {
		out, err := u.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return fmt.Errorf("blobsink: list multipart uploads of %s: %w", u.bucket, err)
		}
		for _, up := range out.Uploads {
			key, ok := strings.CutPrefix(aws.ToString(up.Key), u.prefix)
			if !ok {
				continue
			}
			if err := fn(Upload{Key: key, ID: aws.ToString(up.UploadId), Initiated: aws.ToTime(up.Initiated)}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || (aws.ToString(out.NextKeyMarker) == "" && aws.ToString(out.NextUploadIdMarker) == "") {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// Abort aborts up and deletes its stored parts.
func (u *Uploads) Abort(ctx context.Context, up Upload) error {
	if u == nil {
		return nil
	}
	_, err := u.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(u.bucket),
		Key:      aws.String(u.prefix + up.Key),
		UploadId: aws.String(up.ID),
	})
	if err != nil {
		return fmt.Errorf("blobsink: abort the upload of %s: %w", up.Key, err)
	}
	return nil
}

// AbortKey aborts every unfinished multipart upload of key (a key of the
// bucket, without the URL's prefix) and returns how many it aborted. A
// writer whose upload failed could not always abort it (the server was
// unreachable): its caller calls AbortKey once the server answers again,
// so that the parts do not stay stored. A nil *Uploads has none.
func (u *Uploads) AbortKey(ctx context.Context, key string) (int, error) {
	n := 0
	err := u.list(ctx, key, func(up Upload) error {
		if up.Key != key {
			return nil
		}
		if err := u.Abort(ctx, up); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}
