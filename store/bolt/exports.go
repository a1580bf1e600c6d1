package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hookd/store"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

func exportIndexKey(j *store.ExportJob) []byte {
	return join(j.SubscriptionID[:], timeKey(j.CreatedAt), j.ID[:])
}

func activeKey(j *store.ExportJob) []byte { return join(timeKey(j.CreatedAt), j.ID[:]) }

// activeJobs calls fn for every active job, oldest first, until fn returns false.
func activeJobs(tx *bbolt.Tx, fn func(j *store.ExportJob) bool) error {
	jobs := tx.Bucket(bucketExports)
	c := tx.Bucket(bucketExportsActive).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		var j store.ExportJob
		if err := getJSON(jobs, k[8:], &j); err != nil {
			return fmt.Errorf("active export %x: %w", k[8:], err)
		}
		if !fn(&j) {
			return nil
		}
	}
	return nil
}

// activeExportRange returns the range of the subscription's active export
// job, if there is one. While it is active, the events in its range keep
// their state.
func activeExportRange(tx *bbolt.Tx, sub uuid.UUID) (from, to uint64, ok bool) {
	_ = activeJobs(tx, func(j *store.ExportJob) bool {
		if j.SubscriptionID == sub {
			from, to, ok = j.FromSeq, j.ToSeq, true
		}
		return !ok
	})
	return from, to, ok
}

// putExport stores j, keeping the index of active jobs in step with the
// state it had (was) and has now.
func putExport(tx *bbolt.Tx, j *store.ExportJob, was store.ExportState) error {
	if was.Active() && !j.State.Active() {
		if err := tx.Bucket(bucketExportsActive).Delete(activeKey(j)); err != nil {
			return err
		}
	}
	if !was.Active() && j.State.Active() {
		if err := tx.Bucket(bucketExportsActive).Put(activeKey(j), nil); err != nil {
			return err
		}
	}
	return putJSON(tx.Bucket(bucketExports), j.ID[:], j)
}

func getExport(tx *bbolt.Tx, id uuid.UUID) (store.ExportJob, error) {
	var j store.ExportJob
	err := getJSON(tx.Bucket(bucketExports), id[:], &j)
	return j, err
}

// getCustomerExport returns the job id of the customer's subscription sub.
func getCustomerExport(tx *bbolt.Tx, customerID, sub, id uuid.UUID) (store.ExportJob, error) {
	if _, err := getSubscription(tx, customerID, sub); err != nil {
		return store.ExportJob{}, err
	}
	j, err := getExport(tx, id)
	if err != nil {
		return store.ExportJob{}, err
	}
	if j.CustomerID != customerID || j.SubscriptionID != sub {
		return store.ExportJob{}, store.ErrNotFound
	}
	return j, nil
}

// CreateExport creates an export job of the customer's subscription sub in
// state processing. The job covers every failure sequence handed out so far
// above the subscription's watermark. encoding is kept with the job for the
// writer. It is ErrNotFound for an unknown subscription and an ErrConflict
// with the reason TooManyActiveExports while another job of the same
// customer is active in scope (ScopeCustomer unless ScopeSubscription), with the reason NothingToExport when no failed event of the
// subscription awaits an export (no job is created, so no cooldown starts),
// or with a reason naming the time when the subscription completed an
// export of at least one event less than cooldown ago (0 turns the
// cooldown off).
func (db *DB) CreateExport(customerID, sub uuid.UUID, encoding string, scope store.ExportScope, cooldown time.Duration) (store.ExportJob, error) {
	var job store.ExportJob
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
			return err
		}
		busy := false
		err := activeJobs(tx, func(j *store.ExportJob) bool {
			if scope == store.ScopeSubscription {
				busy = j.SubscriptionID == sub
			} else {
				busy = j.CustomerID == customerID
			}
			return !busy
		})
		if err != nil {
			return err
		}
		if busy {
			return conflict(store.TooManyActiveExports)
		}
		st, err := getStats(tx, sub)
		if err != nil {
			return err
		}
		if !hasExportable(tx, sub, st) {
			return conflict(store.NothingToExport)
		}
		now := db.now().UTC()
		if cooldown > 0 {
			last, err := lastCompleted(tx, sub)
			if err != nil {
				return err
			}
			if !last.IsZero() && now.Before(last.Add(cooldown)) {
				return conflict("the subscription completed an export at %s; the next export may start at %s",
					last.Format(time.RFC3339), last.Add(cooldown).UTC().Format(time.RFC3339))
			}
		}
		job = store.ExportJob{
			ID: uuid.New(), CustomerID: customerID, SubscriptionID: sub,
			State: store.ExportProcessing, CreatedAt: now, UpdatedAt: now,
			FromSeq: st.Watermark, ToSeq: st.FailSeq, Encoding: encoding,
		}
		if err := tx.Bucket(bucketExportsBySub).Put(exportIndexKey(&job), nil); err != nil {
			return err
		}
		return putExport(tx, &job, "")
	})
	return job, err
}

// hasExportable reports whether the subscription, whose stats are st, has
// a failed event above its export watermark: the events Summary counts as
// exportable.
func hasExportable(tx *bbolt.Tx, sub uuid.UUID, st Stats) bool {
	k, _ := tx.Bucket(bucketFailures).Cursor().Seek(failKey(sub, st.Watermark+1))
	return k != nil && bytes.HasPrefix(k, sub[:])
}

// lastCompleted returns the latest completion time of the subscription's
// jobs that exported at least one event, zero when none did: an export
// that wrote no event starts no cooldown.
func lastCompleted(tx *bbolt.Tx, sub uuid.UUID) (time.Time, error) {
	var last time.Time
	jobs := tx.Bucket(bucketExports)
	c := tx.Bucket(bucketExportsBySub).Cursor()
	for k, _ := c.Seek(sub[:]); k != nil && bytes.HasPrefix(k, sub[:]); k, _ = c.Next() {
		var j store.ExportJob
		if err := getJSON(jobs, k[24:], &j); err != nil {
			return time.Time{}, err
		}
		if j.State == store.ExportCompleted && j.EventCount > 0 && j.CompletedAt.After(last) {
			last = j.CompletedAt
		}
	}
	return last, nil
}

// Export returns the export job id of the customer's subscription sub.
func (db *DB) Export(customerID, sub, id uuid.UUID) (store.ExportJob, error) {
	var j store.ExportJob
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		var err error
		j, err = getCustomerExport(tx, customerID, sub, id)
		return err
	})
	return j, err
}

// Exports lists the export jobs of the customer's subscription sub created
// at or after since, oldest first.
func (db *DB) Exports(customerID, sub uuid.UUID, since time.Time) ([]store.ExportJob, error) {
	out := []store.ExportJob{}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
			return err
		}
		jobs := tx.Bucket(bucketExports)
		c := tx.Bucket(bucketExportsBySub).Cursor()
		for k, _ := c.Seek(join(sub[:], timeKey(since))); k != nil && bytes.HasPrefix(k, sub[:]); k, _ = c.Next() {
			var j store.ExportJob
			if err := getJSON(jobs, k[24:], &j); err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}

// ExportByID returns any export job by id.
func (db *DB) ExportByID(id uuid.UUID) (store.ExportJob, error) {
	var j store.ExportJob
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		var err error
		j, err = getExport(tx, id)
		return err
	})
	return j, err
}

// ActiveExports returns the jobs in processing or writing, oldest first.
func (db *DB) ActiveExports() ([]store.ExportJob, error) {
	var out []store.ExportJob
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return activeJobs(tx, func(j *store.ExportJob) bool {
			out = append(out, *j)
			return true
		})
	})
	return out, err
}

// transition loads job id, runs check (when not nil) and change on it, and
// stores the changed job with its new update time, all in one transaction.
// An error from check or change leaves everything as it was.
func (db *DB) transition(id uuid.UUID, check func(tx *bbolt.Tx, j *store.ExportJob) error, change func(tx *bbolt.Tx, j *store.ExportJob) error) (store.ExportJob, error) {
	var j store.ExportJob
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		var err error
		if j, err = getExport(tx, id); err != nil {
			return err
		}
		if check != nil {
			if err := check(tx, &j); err != nil {
				return err
			}
		}
		was := j.State
		if err := change(tx, &j); err != nil {
			return err
		}
		j.UpdatedAt = db.now().UTC()
		return putExport(tx, &j, was)
	})
	return j, err
}

// CancelExport cancels the export job id of the customer's subscription sub
// while it is processing: no file is written and no event changes. Once the
// job has begun writing or has ended it is an ErrConflict.
func (db *DB) CancelExport(customerID, sub, id uuid.UUID) (store.ExportJob, error) {
	return db.transition(id, func(tx *bbolt.Tx, j *store.ExportJob) error {
		_, err := getCustomerExport(tx, customerID, sub, id)
		return err
	}, func(_ *bbolt.Tx, j *store.ExportJob) error {
		switch j.State {
		case store.ExportProcessing:
			j.State = store.ExportCanceled
			return nil
		case store.ExportWriting:
			return conflict("the export has begun writing its file and can no longer be canceled")
		}
		return conflict("the export has ended (%s) and can no longer be canceled", j.State)
	})
}

// BeginExportWrite moves job id from processing to writing, records the
// key its file is written to and counts the attempt. From then on the job
// can no longer be canceled. It is an ErrConflict when the job is not
// processing (canceled meanwhile, say) or its subscription was deleted.
func (db *DB) BeginExportWrite(id uuid.UUID, key string) (store.ExportJob, error) {
	return db.transition(id, nil, func(tx *bbolt.Tx, j *store.ExportJob) error {
		if j.State != store.ExportProcessing {
			return conflict("the export is %s, not processing", j.State)
		}
		if tx.Bucket(bucketSubscriptions).Get(j.SubscriptionID[:]) == nil {
			return conflict("the subscription was deleted")
		}
		j.State = store.ExportWriting
		j.Key = key
		j.Attempts++
		return nil
	})
}

// ResumeExport moves job id from writing back to processing, after its
// write was abandoned (by a shutdown or a crash) and its file removed. The
// job keeps its range and is written again from the start.
func (db *DB) ResumeExport(id uuid.UUID) (store.ExportJob, error) {
	return db.transition(id, nil, func(_ *bbolt.Tx, j *store.ExportJob) error {
		if j.State != store.ExportWriting {
			return conflict("the export is %s, not writing", j.State)
		}
		j.State = store.ExportProcessing
		return nil
	})
}

// FailExport ends the active job id in failed with reason (one of the
// Failure* values, shown to the customer) and detail (kept for the
// operator, never shown to clients). No event changes. It is an
// ErrConflict when the job has ended.
func (db *DB) FailExport(id uuid.UUID, reason, detail string) (store.ExportJob, error) {
	return db.transition(id, nil, func(_ *bbolt.Tx, j *store.ExportJob) error {
		if !j.State.Active() {
			return conflict("the export has ended (%s)", j.State)
		}
		j.State = store.ExportFailed
		j.FailureReason = reason
		j.Error = detail
		j.RetryAt = time.Time{}
		return nil
	})
}

// RetryExport moves job id from writing back to processing after its
// write failed on the blob store and its file was removed: it counts the
// blob error, keeps detail for the operator, notes when the retries began
// (at the first blob error) and makes the job wait until retryAt. The job
// stays active, so its events stay reserved to it.
func (db *DB) RetryExport(id uuid.UUID, retryAt time.Time, detail string) (store.ExportJob, error) {
	return db.transition(id, nil, func(_ *bbolt.Tx, j *store.ExportJob) error {
		if j.State != store.ExportWriting {
			return conflict("the export is %s, not writing", j.State)
		}
		j.State = store.ExportProcessing
		j.BlobErrors++
		if j.RetryingSince.IsZero() {
			j.RetryingSince = db.now().UTC()
		}
		j.RetryAt = retryAt.UTC()
		j.Error = detail
		return nil
	})
}

// CompleteExport marks job id completed with its committed file and, in the
// same transaction, every event of its range as exported: the
// subscription's watermark moves to the job's upper bound and the range is
// recorded in exportRanges (when not empty). The cost does not depend on
// the number of events. The job must be writing and its subscription must
// still exist; otherwise it is an ErrConflict (ErrNotFound when the job is
// gone) and nothing changes, and the caller removes the file.
func (db *DB) CompleteExport(id uuid.UUID, r store.ExportResult) (store.ExportJob, error) {
	return db.transition(id, nil, func(tx *bbolt.Tx, j *store.ExportJob) error {
		if j.State != store.ExportWriting {
			return conflict("the export is %s, not writing", j.State)
		}
		if tx.Bucket(bucketSubscriptions).Get(j.SubscriptionID[:]) == nil {
			return conflict("the subscription was deleted")
		}
		st, err := getStats(tx, j.SubscriptionID)
		if err != nil {
			return err
		}
		if st.Watermark != j.FromSeq || st.FailSeq < j.ToSeq {
			return fmt.Errorf("export %s: subscription watermark %d and failure sequence %d do not fit the range (%d, %d]",
				j.ID, st.Watermark, st.FailSeq, j.FromSeq, j.ToSeq)
		}
		now := db.now().UTC()
		st.Watermark = j.ToSeq
		st.UpdatedAt = now
		if err := putStats(tx, j.SubscriptionID, st); err != nil {
			return err
		}
		if j.ToSeq > j.FromSeq {
			if err := tx.Bucket(bucketExportRanges).Put(failKey(j.SubscriptionID, j.ToSeq), j.ID[:]); err != nil {
				return err
			}
		}
		j.State = store.ExportCompleted
		j.CompletedAt = now
		j.Key, j.Size, j.ETag, j.EventCount = r.Key, r.Size, r.ETag, r.EventCount
		return nil
	})
}

// ScanExport reads the next events of job's range: it goes through up to
// limit failure sequences after the sequence after (start with 0) and calls
// fn for each event still in failure that failed at or after failedSince.
// It returns the failure sequence to resume after and whether the range is
// exhausted. Each call is one short read transaction; fn runs inside it and
// must only copy what it needs, never block. An error from fn stops the
// scan and is returned. At the end of each call the pages read are dropped
// from the process's resident set (see releaseMapped).
func (db *DB) ScanExport(job store.ExportJob, after uint64, failedSince time.Time, limit int, fn func(*store.ExportEvent) error) (next uint64, done bool, err error) {
	sub := job.SubscriptionID
	next = max(after, job.FromSeq)
	since := failedSince.UnixNano()
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		defer db.releaseMapped(tx)
		// Events usually fail in the order they were recorded, so the
		// event cursor mostly steps to the next key instead of seeking.
		events := tx.Bucket(bucketEvents).Cursor()
		var ek, rec []byte
		c := tx.Bucket(bucketFailures).Cursor()
		var ev store.ExportEvent
		var tokenBuf []byte // where a token stored in parts is rebuilt
		key := make([]byte, 24)
		copy(key, sub[:])
		n := 0
		for k, v := c.Seek(failKey(sub, next+1)); ; k, v = c.Next() {
			if k == nil || !bytes.HasPrefix(k, sub[:]) {
				done = true
				return nil
			}
			fs := binary.BigEndian.Uint64(k[16:])
			if fs > job.ToSeq {
				done = true
				return nil
			}
			if n == limit {
				return nil
			}
			n++
			next = fs
			copy(key[16:], v)
			if ek != nil {
				ek, rec = events.Next()
			}
			if !bytes.Equal(ek, key) {
				ek, rec = events.Seek(key)
			}
			if !bytes.Equal(ek, key) || recordState(rec) != store.Failure || recordFailedAtNanos(rec) < since {
				continue
			}
			if err := decodeExportEvent(rec, &ev, &tokenBuf, db.refs(tx)); err != nil {
				return fmt.Errorf("event %x: %w", key, err)
			}
			if err := fn(&ev); err != nil {
				return err
			}
		}
	})
	return next, done, err
}
