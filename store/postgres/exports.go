package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// exportLockSpace is the first key of the transaction's advisory lock that
// CreateExport takes on a customer (the second is exportLockKey), so that
// two jobs created at once in one scope see each other: the bolt backend
// has one writer, PostgreSQL many. Both scopes lie within a customer.
const exportLockSpace = 0x65787073 // "exps"

// exportLockKey is the second key of a customer's export lock. Customers
// that share it only wait for each other's CreateExport.
func exportLockKey(customerID uuid.UUID) int32 {
	return int32(binary.BigEndian.Uint32(customerID[12:]))
}

// exportConflict is an ErrConflict with the bolt backend's reason texts.
func exportConflict(format string, args ...any) error {
	return &store.ConflictError{Reason: fmt.Sprintf(format, args...)}
}

// activeStates is the SQL list of the states store.ExportState.Active
// names; the partial index exports_active is defined on it.
const activeStates = `('processing', 'writing')`

// ceilMicro rounds t up to PostgreSQL's precision, so that comparing
// columns (stamped with Now, whole microseconds) with it gives the answers
// the bolt backend gives with nanoseconds: x < t and x >= t hold for a
// whole-microsecond x exactly when they hold for ceilMicro(t). The driver
// would truncate t instead.
func ceilMicro(t time.Time) time.Time {
	if c := t.Truncate(time.Microsecond); !c.Equal(t) {
		return c.Add(time.Microsecond)
	}
	return t
}

// cooldownFrom is the value of the cooldown_from column of j.
func cooldownFrom(j *store.ExportJob) *time.Time {
	if j.State == store.ExportCompleted && j.EventCount > 0 {
		return nullTime(j.CompletedAt)
	}
	return nil
}

// insertExport stores the new job j.
func insertExport(ctx context.Context, tx pgx.Tx, j *store.ExportJob) error {
	doc, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO exports (id, customer_id, subscription_id, state, created_at, cooldown_from, job)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, j.ID, j.CustomerID, j.SubscriptionID, string(j.State), j.CreatedAt, cooldownFrom(j), doc)
	return err
}

// updateExport stores the changed job j.
func updateExport(ctx context.Context, tx pgx.Tx, j *store.ExportJob) error {
	doc, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE exports SET state = $2, cooldown_from = $3, job = $4 WHERE id = $1`,
		j.ID, string(j.State), cooldownFrom(j), doc)
	return err
}

// getExport reads job id, locking its row when forUpdate; ErrNotFound
// when there is none.
func getExport(ctx context.Context, tx pgx.Tx, id uuid.UUID, forUpdate bool) (store.ExportJob, error) {
	sql := `SELECT job FROM exports WHERE id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	var doc []byte
	var j store.ExportJob
	if err := tx.QueryRow(ctx, sql, id).Scan(&doc); err != nil {
		return j, err
	}
	err := json.Unmarshal(doc, &j)
	return j, err
}

// queryExports returns the jobs a query of the job column selects, in its
// order; nil when none, as the bolt backend answers.
func queryExports(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]store.ExportJob, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	var out []store.ExportJob
	var doc []byte
	_, err = pgx.ForEachRow(rows, []any{&doc}, func() error {
		var j store.ExportJob
		if err := json.Unmarshal(doc, &j); err != nil {
			return err
		}
		out = append(out, j)
		return nil
	})
	return out, err
}

// customerSubExists reports ErrNotFound unless the customer has the
// subscription sub.
func customerSubExists(ctx context.Context, tx pgx.Tx, customerID, sub uuid.UUID) error {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscriptions WHERE id = $1 AND customer_id = $2)`, sub, customerID).Scan(&ok)
	if err == nil && !ok {
		err = store.ErrNotFound
	}
	return err
}

// subscriptionKept reports whether subscription sub exists, and keeps it
// from being deleted until the transaction ends.
func subscriptionKept(ctx context.Context, tx pgx.Tx, sub uuid.UUID) (bool, error) {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM subscriptions WHERE id = $1 FOR KEY SHARE`, sub).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// customerExport returns the export job id of the customer's subscription
// sub: ErrNotFound when either is not the customer's.
func customerExport(ctx context.Context, tx pgx.Tx, customerID, sub, id uuid.UUID, forUpdate bool) (store.ExportJob, error) {
	if err := customerSubExists(ctx, tx, customerID, sub); err != nil {
		return store.ExportJob{}, err
	}
	j, err := getExport(ctx, tx, id, forUpdate)
	if err != nil {
		return store.ExportJob{}, err
	}
	if j.CustomerID != customerID || j.SubscriptionID != sub {
		return store.ExportJob{}, store.ErrNotFound
	}
	return j, nil
}

// CreateExport creates an export job of the customer's subscription sub in
// state processing, over the failure sequences handed out so far above the
// subscription's watermark, with the bolt backend's refusals: ErrNotFound
// for an unknown subscription; an ErrConflict with TooManyActiveExports
// while another job is active in scope, with NothingToExport when no
// failed event awaits an export, or naming the end of the cooldown.
//
// The customer's advisory lock serializes the jobs created at once in one
// scope; the subscription's counters, locked, keep its failure sequence
// and watermark still while the job is created, and the subscription's row
// keeps it from being deleted meanwhile.
func (db *DB) CreateExport(customerID, sub uuid.UUID, encoding string, scope store.ExportScope, cooldown time.Duration) (store.ExportJob, error) {
	var job store.ExportJob
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM subscriptions WHERE id = $1 AND customer_id = $2 FOR KEY SHARE`, sub, customerID).Scan(&one)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, int32(exportLockSpace), exportLockKey(customerID)); err != nil {
			return err
		}
		sql := `SELECT EXISTS (SELECT 1 FROM exports WHERE state IN ` + activeStates + ` AND customer_id = $1)`
		arg := customerID
		if scope == store.ScopeSubscription {
			sql = `SELECT EXISTS (SELECT 1 FROM exports WHERE state IN ` + activeStates + ` AND subscription_id = $1)`
			arg = sub
		}
		var busy bool
		if err := tx.QueryRow(ctx, sql, arg).Scan(&busy); err != nil {
			return err
		}
		if busy {
			return exportConflict(store.TooManyActiveExports)
		}
		st, err := readStats(ctx, tx, sub, true)
		if err != nil {
			return err
		}
		var exportable bool
		err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE subscription_id = $1 AND fail_seq > 0 AND fail_seq > $2)`,
			sub, int64(st.Watermark)).Scan(&exportable)
		if err != nil {
			return err
		}
		if !exportable {
			return exportConflict(store.NothingToExport)
		}
		now := db.Now().UTC()
		if cooldown > 0 {
			var last *time.Time
			if err := tx.QueryRow(ctx, `SELECT max(cooldown_from) FROM exports WHERE subscription_id = $1`, sub).Scan(&last); err != nil {
				return err
			}
			if last := derefTime(last); !last.IsZero() && now.Before(last.Add(cooldown)) {
				return exportConflict("the subscription completed an export at %s; the next export may start at %s",
					last.Format(time.RFC3339), last.Add(cooldown).UTC().Format(time.RFC3339))
			}
		}
		job = store.ExportJob{
			ID: uuid.New(), CustomerID: customerID, SubscriptionID: sub,
			State: store.ExportProcessing, CreatedAt: now, UpdatedAt: now,
			FromSeq: st.Watermark, ToSeq: st.FailSeq, Encoding: encoding,
		}
		return insertExport(ctx, tx, &job)
	})
	if err != nil {
		return store.ExportJob{}, err
	}
	return job, nil
}

// Export returns the export job id of the customer's subscription sub.
func (db *DB) Export(customerID, sub, id uuid.UUID) (store.ExportJob, error) {
	var j store.ExportJob
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		j, err = customerExport(ctx, tx, customerID, sub, id, false)
		return err
	})
	return j, err
}

// Exports lists the export jobs of the customer's subscription sub created
// at or after since, oldest first.
func (db *DB) Exports(customerID, sub uuid.UUID, since time.Time) ([]store.ExportJob, error) {
	var out []store.ExportJob
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		if err := customerSubExists(ctx, tx, customerID, sub); err != nil {
			return err
		}
		var err error
		out, err = queryExports(ctx, tx, `SELECT job FROM exports WHERE subscription_id = $1 AND created_at >= $2
ORDER BY created_at, id`, sub, ceilMicro(since))
		return err
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.ExportJob{}
	}
	return out, nil
}

// ExportByID returns any export job by id.
func (db *DB) ExportByID(id uuid.UUID) (store.ExportJob, error) {
	var j store.ExportJob
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		j, err = getExport(ctx, tx, id, false)
		return err
	})
	return j, err
}

// ExportsByID returns the jobs of ids that exist, by id.
func (db *DB) ExportsByID(ids []uuid.UUID) (map[uuid.UUID]store.ExportJob, error) {
	out := make(map[uuid.UUID]store.ExportJob, len(ids))
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		jobs, err := queryExports(ctx, tx, `SELECT job FROM exports WHERE id = ANY($1)`, ids)
		for _, j := range jobs {
			out[j.ID] = j
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ActiveExports returns the jobs in processing or writing, oldest first.
func (db *DB) ActiveExports() ([]store.ExportJob, error) {
	var out []store.ExportJob
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = queryExports(ctx, tx, `SELECT job FROM exports WHERE state IN `+activeStates+` ORDER BY created_at, id`)
		return err
	})
	return out, err
}

// ExportStates counts the export jobs kept in the store by state.
func (db *DB) ExportStates() (map[store.ExportState]int, error) {
	out := map[store.ExportState]int{}
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT state, count(*) FROM exports GROUP BY state`)
		if err != nil {
			return err
		}
		var state string
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error {
			out[store.ExportState(state)] = int(n)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// changeExport loads job id locked, runs check (when not nil) and change
// on it, and stores the changed job with its new update time, all in one
// transaction. An error from check or change leaves everything as it was.
func (db *DB) changeExport(id uuid.UUID, check func(ctx context.Context, tx pgx.Tx, j *store.ExportJob) error,
	change func(ctx context.Context, tx pgx.Tx, j *store.ExportJob, now time.Time) error) (store.ExportJob, error) {
	var j store.ExportJob
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if j, err = getExport(ctx, tx, id, true); err != nil {
			return err
		}
		if check != nil {
			if err := check(ctx, tx, &j); err != nil {
				return err
			}
		}
		now := db.Now().UTC()
		if err := change(ctx, tx, &j, now); err != nil {
			return err
		}
		j.UpdatedAt = now
		return updateExport(ctx, tx, &j)
	})
	if err != nil {
		return store.ExportJob{}, err
	}
	return j, nil
}

// CancelExport cancels the export job id of the customer's subscription sub
// while it is processing: no file is written and no event changes. Once the
// job has begun writing or has ended it is an ErrConflict.
func (db *DB) CancelExport(customerID, sub, id uuid.UUID) (store.ExportJob, error) {
	return db.changeExport(id, func(ctx context.Context, tx pgx.Tx, _ *store.ExportJob) error {
		_, err := customerExport(ctx, tx, customerID, sub, id, false)
		return err
	}, func(_ context.Context, _ pgx.Tx, j *store.ExportJob, _ time.Time) error {
		switch j.State {
		case store.ExportProcessing:
			j.State = store.ExportCanceled
			return nil
		case store.ExportWriting:
			return exportConflict("the export has begun writing its file and can no longer be canceled")
		}
		return exportConflict("the export has ended (%s) and can no longer be canceled", j.State)
	})
}

// BeginExportWrite moves job id from processing to writing, records the
// key its file is written to and counts the attempt. It is an ErrConflict
// when the job is not processing or its subscription was deleted.
func (db *DB) BeginExportWrite(id uuid.UUID, key string) (store.ExportJob, error) {
	return db.changeExport(id, nil, beginWrite(key))
}

// ResumeExport moves job id from writing back to processing, after its
// write was abandoned and its file removed.
func (db *DB) ResumeExport(id uuid.UUID) (store.ExportJob, error) {
	return db.changeExport(id, nil, resume)
}

// FailExport ends the active job id in failed with reason (shown to the
// customer) and detail (for the operator). No event changes. It is an
// ErrConflict when the job has ended.
func (db *DB) FailExport(id uuid.UUID, reason, detail string) (store.ExportJob, error) {
	return db.changeExport(id, nil, failJob(reason, detail))
}

// failJob is FailExport's change of the job.
func failJob(reason, detail string) exportChange {
	return func(_ context.Context, _ pgx.Tx, j *store.ExportJob, _ time.Time) error {
		if !j.State.Active() {
			return exportConflict("the export has ended (%s)", j.State)
		}
		j.State = store.ExportFailed
		j.FailureReason = reason
		j.Error = detail
		j.RetryAt = time.Time{}
		return nil
	}
}

// RetryExport moves job id from writing back to processing after its
// write failed on the blob store: it counts the blob error, keeps detail,
// notes when the retries began and makes the job wait until retryAt.
func (db *DB) RetryExport(id uuid.UUID, retryAt time.Time, detail string) (store.ExportJob, error) {
	return db.changeExport(id, nil, retryJob(retryAt, detail))
}

// retryJob is RetryExport's change of the job.
func retryJob(retryAt time.Time, detail string) exportChange {
	return func(_ context.Context, _ pgx.Tx, j *store.ExportJob, now time.Time) error {
		if j.State != store.ExportWriting {
			return exportConflict("the export is %s, not writing", j.State)
		}
		j.State = store.ExportProcessing
		j.BlobErrors++
		if j.RetryingSince.IsZero() {
			j.RetryingSince = now
		}
		j.RetryAt = retryAt.UTC()
		j.Error = detail
		return nil
	}
}

// CompleteExport marks job id completed with its committed file and, in
// the same transaction, every event of its range as exported: the
// subscription's watermark moves to the job's upper bound and the range is
// recorded in export_ranges (when not empty). The cost does not depend on
// the number of events. The job must be writing and its subscription must
// still exist (its row is kept from deletion until the commit); otherwise
// it is an ErrConflict (ErrNotFound when the job is gone) and nothing
// changes.
func (db *DB) CompleteExport(id uuid.UUID, r store.ExportResult) (store.ExportJob, error) {
	return db.changeExport(id, nil, complete(r))
}

// ScanExport reads the next events of job's range: it goes through up to
// limit failure sequences after the sequence after (start with 0) and calls
// fn for each event still in failure that failed at or after failedSince.
// It returns the failure sequence to resume after and whether the range is
// exhausted. Each call is one short read transaction; fn runs inside it and
// must only copy what it needs.
func (db *DB) ScanExport(job store.ExportJob, after uint64, failedSince time.Time, limit int, fn func(*store.ExportEvent) error) (next uint64, done bool, err error) {
	next = max(after, job.FromSeq)
	// A negative limit reads the range to its end, as in the bolt backend.
	var rowLimit *int
	if limit >= 0 {
		rowLimit = new(limit + 1)
	}
	since := ceilMicro(failedSince)
	err = db.read(func(ctx context.Context, tx pgx.Tx) error {
		// One row past the limit tells whether the range goes on, as the
		// bolt backend's cursor looks at the next key.
		rows, err := tx.Query(ctx, `
SELECT fail_seq, state, failed_at, id, jti, created_at, toe, type, txn, endpoint, payload, jws
FROM events WHERE subscription_id = $1 AND fail_seq > 0 AND fail_seq > $2 AND fail_seq <= $3
ORDER BY fail_seq LIMIT $4`, job.SubscriptionID, int64(next), int64(job.ToSeq), rowLimit)
		if err != nil {
			return err
		}
		defer rows.Close()
		var (
			ev       store.ExportEvent
			failSeq  int64
			state    int16
			failedAt *time.Time
			jti      *uuid.UUID
			typ, txn string
			endpoint string
			jws      string
		)
		n := 0
		for rows.Next() {
			if n == limit {
				return nil
			}
			n++
			if err := rows.Scan(&failSeq, &state, &failedAt, &ev.ID, &jti, &ev.CreatedAt, &ev.Toe, &typ, &txn, &endpoint, &ev.Payload, &jws); err != nil {
				return err
			}
			next = uint64(failSeq)
			if store.State(state) != store.Failure || derefTime(failedAt).Before(since) {
				continue
			}
			ev.CreatedAt = ev.CreatedAt.UTC()
			ev.Jti = uuid.UUID{}
			if jti != nil {
				ev.Jti = *jti
			}
			ev.Type, ev.Txn, ev.Endpoint, ev.JWS = []byte(typ), []byte(txn), []byte(endpoint), []byte(jws)
			if err := fn(&ev); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		done = true
		return nil
	})
	return next, done, err
}

// exportChange is a change of a locked job (see changeExport).
type exportChange = func(ctx context.Context, tx pgx.Tx, j *store.ExportJob, now time.Time) error

// beginWrite is BeginExportWrite's change of the job.
func beginWrite(key string) exportChange {
	return func(ctx context.Context, tx pgx.Tx, j *store.ExportJob, _ time.Time) error {
		if j.State != store.ExportProcessing {
			return exportConflict("the export is %s, not processing", j.State)
		}
		if ok, err := subscriptionKept(ctx, tx, j.SubscriptionID); err != nil || !ok {
			if err == nil {
				err = exportConflict("the subscription was deleted")
			}
			return err
		}
		j.State = store.ExportWriting
		j.Key = key
		j.Attempts++
		return nil
	}
}

// resume is ResumeExport's change of the job.
func resume(_ context.Context, _ pgx.Tx, j *store.ExportJob, _ time.Time) error {
	if j.State != store.ExportWriting {
		return exportConflict("the export is %s, not writing", j.State)
	}
	j.State = store.ExportProcessing
	return nil
}

// complete is CompleteExport's change of the job.
func complete(r store.ExportResult) exportChange {
	return func(ctx context.Context, tx pgx.Tx, j *store.ExportJob, now time.Time) error {
		if j.State != store.ExportWriting {
			return exportConflict("the export is %s, not writing", j.State)
		}
		if ok, err := subscriptionKept(ctx, tx, j.SubscriptionID); err != nil || !ok {
			if err == nil {
				err = exportConflict("the subscription was deleted")
			}
			return err
		}
		stats := newStatsCache(tx)
		st, err := stats.get(ctx, j.SubscriptionID)
		if err != nil {
			return err
		}
		if st.Watermark != j.FromSeq || st.FailSeq < j.ToSeq {
			return fmt.Errorf("export %s: subscription watermark %d and failure sequence %d do not fit the range (%d, %d]",
				j.ID, st.Watermark, st.FailSeq, j.FromSeq, j.ToSeq)
		}
		st.Watermark = j.ToSeq
		if err := stats.flush(ctx, now); err != nil {
			return err
		}
		if j.ToSeq > j.FromSeq {
			_, err := tx.Exec(ctx, `INSERT INTO export_ranges (subscription_id, to_fail_seq, job_id) VALUES ($1, $2, $3)
ON CONFLICT (subscription_id, to_fail_seq) DO UPDATE SET job_id = EXCLUDED.job_id`, j.SubscriptionID, int64(j.ToSeq), j.ID)
			if err != nil {
				return err
			}
		}
		j.State = store.ExportCompleted
		j.CompletedAt = now
		j.Key, j.Size, j.ETag, j.EventCount = r.Key, r.Size, r.ETag, r.EventCount
		return nil
	}
}
