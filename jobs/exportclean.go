package jobs

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/blob"

	"hookd/blobsink"
	"hookd/store"
)

// Defaults for ExportCleaner fields left zero.
const (
	DefaultCleanBatch = 500
	DefaultOrphanAge  = time.Hour
)

// ExportCleaner removes export jobs and files that are no longer needed.
// Each of its methods is one janitor task: it works in batches of Batch
// (every store transaction and every run of deletions is bounded) until
// nothing is left or ctx is done, and returns how many jobs or files it
// removed. Files are always deleted before the records that name them, so
// an interruption leaves a record to retry with, never a file nobody knows.
type ExportCleaner struct {
	DB     store.Store
	Bucket *blob.Bucket
	// Retention is the age (from creation) at which jobs and their files go.
	Retention time.Duration
	// OrphanAge is the age at which a file that no job owns is deleted; a
	// younger one may belong to a write that is about to commit.
	OrphanAge time.Duration
	// Batch bounds each step.
	Batch int
	// Uploads lists the bucket's unfinished multipart uploads (S3); nil
	// for the other backends, which have none.
	Uploads *blobsink.Uploads
}

// Tasks returns the cleaner's janitor tasks. They run after the task that
// purges deleted subscriptions' events (DeletedSubscriptionsTask), so that
// a deleted subscription's tombstone goes in the same janitor run as the
// last of its data.
func (c *ExportCleaner) Tasks() []Task {
	return []Task{
		{Name: "expired exports", Run: c.DeleteExpired},
		{Name: "exports of deleted subscriptions", Run: c.DeleteDeletedSubscriptions},
		{Name: "orphaned export files", Run: c.DeleteOrphans},
		{Name: "abandoned export uploads", Run: c.AbortAbandonedUploads},
	}
}

func (c *ExportCleaner) orphanAge() time.Duration {
	if c.OrphanAge <= 0 {
		return DefaultOrphanAge
	}
	return c.OrphanAge
}

func (c *ExportCleaner) batch() int {
	if c.Batch <= 0 {
		return DefaultCleanBatch
	}
	return c.Batch
}

// DeleteExpired deletes ended jobs created more than Retention ago and
// their files.
func (c *ExportCleaner) DeleteExpired(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		jobs, err := c.DB.ExpiredExports(c.DB.Now().Add(-c.Retention), c.batch())
		if err != nil || len(jobs) == 0 {
			return total, err
		}
		n, err := c.deleteJobs(ctx, jobs)
		total += n
		if err != nil || len(jobs) < c.batch() {
			return total, err
		}
	}
	return total, ctx.Err()
}

// DeleteDeletedSubscriptions deletes the jobs and files of deleted
// subscriptions, then drops the tombstone of each subscription of which
// nothing is left. A subscription's events go first, by the events task
// (store.PurgeDeleted); its tombstone stays until both are done, whichever
// finishes last.
func (c *ExportCleaner) DeleteDeletedSubscriptions(ctx context.Context) (int, error) {
	subs, err := c.DB.Tombstones()
	if err != nil {
		return 0, err
	}
	total := 0
	for _, sub := range subs {
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			jobs, err := c.DB.DeletedSubscriptionExports(sub, c.batch())
			if err != nil {
				return total, err
			}
			if len(jobs) == 0 {
				break
			}
			n, err := c.deleteJobs(ctx, jobs)
			total += n
			if err != nil {
				return total, err
			}
		}
		if _, err := c.DB.DropTombstone(sub); err != nil {
			return total, err
		}
	}
	return total, nil
}

// deleteJobs deletes the files of jobs, then their records.
func (c *ExportCleaner) deleteJobs(ctx context.Context, jobs []store.ExportJob) (int, error) {
	var keys []string
	ids := make([]uuid.UUID, 0, len(jobs))
	for _, j := range jobs {
		if j.Key != "" {
			keys = append(keys, j.Key)
		}
		ids = append(ids, j.ID)
	}
	if _, err := blobsink.DeleteKeys(ctx, c.Bucket, keys); err != nil {
		return 0, err
	}
	return c.DB.DeleteExports(ids)
}

// tempSuffix matches the suffix of a temporary file that fileblob writes
// next to its final name and renames at commit.
var tempSuffix = regexp.MustCompile(`\.[0-9a-f]+\.tmp$`)

var errEnough = errors.New("enough for one batch")

// DeleteOrphans deletes files in export layout (<customerId>/<subscriptionId>/<jobId>.ndjson...,
// or a temporary file of one that a crash stranded) that no live job owns
// and that are older than OrphanAge: files of failed or deleted jobs whose
// removal failed, and files committed just before a crash. Other keys in
// the bucket are never touched.
func (c *ExportCleaner) DeleteOrphans(ctx context.Context) (int, error) {
	cutoff := c.DB.Now().Add(-c.orphanAge())
	total := 0
	type candidate struct {
		key string
		job uuid.UUID
	}
	var pending []candidate
	var orphans []string
	check := func() error {
		ids := make([]uuid.UUID, len(pending))
		for i, p := range pending {
			ids[i] = p.job
		}
		jobs, err := c.DB.ExportsByID(ids)
		if err != nil {
			return err
		}
		for _, p := range pending {
			if !ownsFile(jobs[p.job], p.key) {
				orphans = append(orphans, p.key)
			}
		}
		pending = pending[:0]
		return nil
	}
	flush := func() error {
		n, err := blobsink.DeleteKeys(ctx, c.Bucket, orphans)
		total += n
		orphans = orphans[:0]
		return err
	}
	err := blobsink.ListPrefix(ctx, c.Bucket, "", func(key string, mod time.Time, _ int64) error {
		if !mod.Before(cutoff) {
			return nil
		}
		job, ok := exportKeyJob(key)
		if !ok {
			return nil
		}
		pending = append(pending, candidate{key, job})
		if len(pending) < c.batch() {
			return nil
		}
		if err := check(); err != nil {
			return err
		}
		if len(orphans) >= c.batch() {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return total, err
	}
	if len(pending) > 0 {
		if err := check(); err != nil {
			return total, err
		}
	}
	return total, flush()
}

// ownsFile reports whether job (zero when there is none) may own the file
// key: a completed job its file, an active job whatever it may be writing.
func ownsFile(job store.ExportJob, key string) bool {
	switch {
	case job.State.Active():
		return true
	case job.State == store.ExportCompleted:
		return key == job.Key
	}
	return false
}

// exportKeyJob returns the job id of a key in export layout, or of a
// temporary file of one.
func exportKeyJob(key string) (uuid.UUID, bool) {
	name := tempSuffix.ReplaceAllString(key, "")
	cid, sid, jid, _, ok := blobsink.ParseKey(name)
	if !ok {
		return uuid.Nil, false
	}
	for _, s := range []string{cid, sid} {
		if _, err := uuid.Parse(s); err != nil {
			return uuid.Nil, false
		}
	}
	id, err := uuid.Parse(jid)
	return id, err == nil
}

// AbortAbandonedUploads aborts the unfinished S3 multipart uploads of
// export files that no write is under way for: uploads cut off by a crash,
// or whose abort failed while the blob store was unreachable and was not
// tried again before a restart (a write that fails or is canceled aborts
// its own, and the exporter tries again while it runs). An upload of a job
// still processing or writing is kept; so is one younger than OrphanAge
// unless its job has ended (then no writer can be using it); keys outside
// the export layout are never touched. It handles one batch per run.
func (c *ExportCleaner) AbortAbandonedUploads(ctx context.Context) (int, error) {
	if c.Uploads == nil {
		return 0, nil
	}
	cutoff := c.DB.Now().Add(-c.orphanAge())
	var uploads []blobsink.Upload
	var ids []uuid.UUID
	err := c.Uploads.List(ctx, func(up blobsink.Upload) error {
		job, ok := exportKeyJob(up.Key)
		if !ok {
			return nil
		}
		uploads, ids = append(uploads, up), append(ids, job)
		if len(uploads) >= c.batch() {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return 0, err
	}
	if len(uploads) == 0 {
		return 0, nil
	}
	jobs, err := c.DB.ExportsByID(ids)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, up := range uploads {
		job, known := jobs[ids[i]]
		if job.State.Active() || (!known && !up.Initiated.Before(cutoff)) {
			continue
		}
		if err := c.Uploads.Abort(ctx, up); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
