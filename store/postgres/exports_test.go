package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
	"hookd/store/storetest"
)

// These tests hold the PostgreSQL side of the exports and the upkeep to
// what only PostgreSQL has: row locks, microsecond times and the rows
// themselves. The behaviour suite (TestContract) holds the rest to the
// bolt backend's answers. The rows they start from are written here
// directly, so that they test this area alone.

// putTestRow inserts a row into table with the values given and, for every
// other column that takes no NULL and has no default, a zero value of its
// type.
func putTestRow(t *testing.T, db *DB, table string, values map[string]any) {
	t.Helper()
	ctx := context.Background()
	rows, err := db.pool.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
WHERE table_name = $1 AND is_nullable = 'NO' AND column_default IS NULL`, table)
	if err != nil {
		t.Fatal(err)
	}
	type column struct{ name, typ string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		err := r.Scan(&c.name, &c.typ)
		return c, err
	})
	if err != nil {
		t.Fatal(err)
	}
	var names, params []string
	var args []any
	for name, v := range values {
		names = append(names, name)
		args = append(args, v)
		params = append(params, fmt.Sprintf("$%d", len(args)))
	}
	zero := map[string]string{
		"text": "''", "boolean": "false", "jsonb": "'{}'", "bytea": "''", "bigint": "0", "integer": "0",
		"smallint": "0", "uuid": "gen_random_uuid()", "ARRAY": "'{}'", "timestamp with time zone": "now()",
		`"char"`: "'h'",
	}
	for _, c := range cols {
		if _, ok := values[c.name]; ok {
			continue
		}
		z, ok := zero[c.typ]
		if !ok {
			t.Fatalf("%s.%s: no zero value for %s", table, c.name, c.typ)
		}
		names = append(names, c.name)
		params = append(params, z)
	}
	sql := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", table, strings.Join(names, ", "), strings.Join(params, ", "))
	if _, err := db.pool.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// rowSub is a subscription written as rows: its record and its counters.
type rowSub struct {
	id, customer uuid.UUID
	next         int64 // the next event's seq
	failSeq      int64 // the last failure sequence handed out
}

func newRowSub(t *testing.T, db *DB, customer uuid.UUID) *rowSub {
	t.Helper()
	s := &rowSub{id: uuid.New(), customer: customer, next: 1}
	putTestRow(t, db, "subscriptions", map[string]any{"id": s.id, "customer_id": customer, "title": s.id.String(), "created_at": db.Now()})
	putTestRow(t, db, "sub_stats", map[string]any{"subscription_id": s.id, "failed_by": make([]int64, store.NumReasons)})
	return s
}

// addFailedRows writes n events of s in failure, failed at failedAt, with
// their counters, and returns their ids.
func (s *rowSub) addFailedRows(t *testing.T, db *DB, n int, createdAt, failedAt time.Time) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for range n {
		id := uuid.New()
		s.failSeq++
		putTestRow(t, db, "events", map[string]any{
			"subscription_id": s.id, "seq": s.next, "id": id, "type": "entityCreated", "toe": int64(1700000000),
			"payload": []byte(`{"n":1}`), "endpoint": "https://example.com/hook", "created_at": createdAt, "updated_at": failedAt,
			"state": int16(store.Failure), "fail_seq": s.failSeq, "failed_at": failedAt, "reason": int16(store.ReasonStatus5xx),
		})
		s.next++
		ids = append(ids, id)
	}
	_, err := db.pool.Exec(context.Background(), `UPDATE sub_stats SET failed = failed + $2, fail_seq = $3,
failed_by[$4] = failed_by[$4] + $2 WHERE subscription_id = $1`, s.id, n, s.failSeq, int(store.ReasonStatus5xx)+1)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// statsOf reads s's counters.
func statsOf(t *testing.T, db *DB, sub uuid.UUID) stats {
	t.Helper()
	var st stats
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		st, err = readStats(ctx, tx, sub, false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// rowsOf returns the rows of table of subscription sub.
func rowsOf(t *testing.T, db *DB, table string, sub uuid.UUID) int {
	t.Helper()
	var n int
	if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table+` WHERE subscription_id = $1`, sub).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestExportRows: a job's range, its scan and its completion on the rows:
// the watermark and the export range are written with the job's end, a
// refused completion writes neither, and the scan's window is compared in
// nanoseconds as the bolt backend compares it.
func TestExportRows(t *testing.T) {
	clk := storetest.NewClock()
	db := openTest(t, clk.Now)
	s := newRowSub(t, db, uuid.New())
	t0 := clk.Now()
	ids := s.addFailedRows(t, db, 3, t0, t0)
	clk.Add(time.Hour)
	later := s.addFailedRows(t, db, 2, clk.Now(), clk.Now())

	job, err := db.CreateExport(s.customer, s.id, "", store.ScopeCustomer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if job.FromSeq != 0 || job.ToSeq != 5 {
		t.Fatalf("got range (%d, %d], want (0, 5]", job.FromSeq, job.ToSeq)
	}
	if _, err := db.CompleteExport(job.ID, store.ExportResult{Key: "k"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("completing a processing job: got %v, want ErrConflict", err)
	}
	if st := statsOf(t, db, s.id); st.Watermark != 0 || rowsOf(t, db, "export_ranges", s.id) != 0 {
		t.Fatalf("after a refused completion: watermark %d, %d ranges; want neither", st.Watermark, rowsOf(t, db, "export_ranges", s.id))
	}
	if job, err = db.BeginExportWrite(job.ID, "k"); err != nil {
		t.Fatal(err)
	}
	scan := func(since time.Time, chunk int) []uuid.UUID {
		t.Helper()
		var got []uuid.UUID
		var after uint64
		for {
			next, done, err := db.ScanExport(job, after, since, chunk, func(e *store.ExportEvent) error {
				if string(e.Type) != "entityCreated" || string(e.Payload) != `{"n":1}` || string(e.Endpoint) != "https://example.com/hook" || e.Toe != 1700000000 {
					t.Errorf("got line %+v", e)
				}
				got = append(got, e.ID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if done {
				return got
			}
			after = next
		}
	}
	if got := scan(time.Time{}, 2); !slices.Equal(got, append(slices.Clone(ids), later...)) {
		t.Errorf("the whole range: got %v", got)
	}
	// A window a nanosecond past the later failures leaves them out: the
	// driver alone would truncate it to their microsecond.
	if got := scan(clk.Now().Add(time.Nanosecond), 10); len(got) != 0 {
		t.Errorf("a window after every failure: got %v, want none", got)
	}
	if got := scan(clk.Now(), 10); !slices.Equal(got, later) {
		t.Errorf("a window from the later failures: got %v, want %v", got, later)
	}
	clk.Add(time.Minute)
	done, err := db.CompleteExport(job.ID, store.ExportResult{Key: "k", EventCount: 5})
	if err != nil {
		t.Fatal(err)
	}
	if st := statsOf(t, db, s.id); st.Watermark != 5 || !st.UpdatedAt.Equal(clk.Now()) || rowsOf(t, db, "export_ranges", s.id) != 1 {
		t.Errorf("after the completion: watermark %d at %v, %d ranges; want 5 now and 1", st.Watermark, st.UpdatedAt, rowsOf(t, db, "export_ranges", s.id))
	}
	var from *time.Time
	if err := db.pool.QueryRow(context.Background(), `SELECT cooldown_from FROM exports WHERE id = $1`, job.ID).Scan(&from); err != nil || from == nil || !from.Equal(done.CompletedAt) {
		t.Errorf("cooldown_from: got %v, %v; want %v", from, err, done.CompletedAt)
	}
	// The cooldown ends a nanosecond-exact hour after the completion.
	s.addFailedRows(t, db, 1, clk.Now(), clk.Now())
	clk.Add(time.Hour - time.Nanosecond)
	if _, err := db.CreateExport(s.customer, s.id, "", store.ScopeCustomer, time.Hour); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a nanosecond before the cooldown's end: got %v, want ErrConflict", err)
	}
	clk.Add(time.Nanosecond)
	if _, err := db.CreateExport(s.customer, s.id, "", store.ScopeCustomer, time.Hour); err != nil {
		t.Errorf("at the cooldown's end: got %v, want a job", err)
	}
}

// TestCompleteWaitsForDelete: a subscription deleted while its job
// completes is either deleted after the completion or refuses it: the
// completion keeps the row until it commits.
func TestCompleteKeepsSubscription(t *testing.T) {
	clk := storetest.NewClock()
	db := openTest(t, clk.Now)
	s := newRowSub(t, db, uuid.New())
	s.addFailedRows(t, db, 1, clk.Now(), clk.Now())
	job, err := db.CreateExport(s.customer, s.id, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginExportWrite(job.ID, "k"); err != nil {
		t.Fatal(err)
	}
	// A transaction holds the subscription's row as a delete would.
	ctx := context.Background()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DELETE FROM subscriptions WHERE id = $1`, s.id); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		_, err := db.CompleteExport(job.ID, store.ExportResult{Key: "k", EventCount: 1})
		result <- err
	}()
	// The completion waits for the delete: it is blocked on the row.
	waitBlocked(t, db)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	err = <-result
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Reason != "the subscription was deleted" {
		t.Fatalf("completion after the delete: got %v, want the subscription-deleted conflict", err)
	}
	if st := statsOf(t, db, s.id); st.Watermark != 0 {
		t.Errorf("got watermark %d, want 0", st.Watermark)
	}
}

// waitBlocked waits until a session of db waits for a lock.
func waitBlocked(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waits for a lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPurgeSkipsLockedEvents: an expired event that a delivery holds
// locked is left for the next batch; the janitor does not wait for it,
// and the counters lose only the events deleted.
func TestPurgeSkipsLockedEvents(t *testing.T) {
	clk := storetest.NewClock()
	db := openTest(t, clk.Now)
	s := newRowSub(t, db, uuid.New())
	s.addFailedRows(t, db, 4, clk.Now(), clk.Now())
	clk.Add(8 * 24 * time.Hour)
	ctx := context.Background()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM events WHERE subscription_id = $1 AND seq = 2 FOR UPDATE`, s.id); err != nil {
		t.Fatal(err)
	}
	n, err := db.PurgeExpiredEvents(clk.Now(), 10)
	if err != nil || n != 3 {
		t.Fatalf("with one event locked: got %d, %v; want the other 3", n, err)
	}
	if st := statsOf(t, db, s.id); st.Failed != 1 || st.FailedBy[store.ReasonStatus5xx] != 1 {
		t.Errorf("got %d failed (%d by status), want 1", st.Failed, st.FailedBy[store.ReasonStatus5xx])
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PurgeExpiredEvents(clk.Now(), 10); err != nil || n != 1 {
		t.Fatalf("after the lock: got %d, %v; want 1", n, err)
	}
	if st := statsOf(t, db, s.id); st.Failed != 0 || st.FailedBy[store.ReasonStatus5xx] != 0 {
		t.Errorf("got %d failed, want 0", st.Failed)
	}
}

// TestPurgeDeletedRows: a deleted subscription's events, export ranges,
// timeline and counters go in batches of the limit; its jobs stay for
// DeleteExports, and its tombstone until they are gone.
func TestPurgeDeletedRows(t *testing.T) {
	clk := storetest.NewClock()
	db := openTest(t, clk.Now)
	s := newRowSub(t, db, uuid.New())
	s.addFailedRows(t, db, 5, clk.Now(), clk.Now())
	job, err := db.CreateExport(s.customer, s.id, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginExportWrite(job.ID, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CompleteExport(job.ID, store.ExportResult{Key: "k", EventCount: 5}); err != nil {
		t.Fatal(err)
	}
	putTestRow(t, db, "timeline", map[string]any{"subscription_id": s.id, "span": "h", "start": clk.Now().Truncate(time.Hour)})
	putTestRow(t, db, "tombstones", map[string]any{"subscription_id": s.id, "customer_id": s.customer})
	if _, err := db.pool.Exec(context.Background(), `DELETE FROM subscriptions WHERE id = $1`, s.id); err != nil {
		t.Fatal(err)
	}
	// 5 events, 1 range, 1 hour, 1 counters row: 8 rows in batches of 3.
	var batches [][2]int
	for {
		events, keys, err := db.PurgeDeleted(s.id, 3)
		if err != nil {
			t.Fatal(err)
		}
		if keys == 0 {
			break
		}
		batches = append(batches, [2]int{events, keys})
	}
	if want := [][2]int{{3, 3}, {2, 3}, {0, 2}}; !slices.Equal(batches, want) {
		t.Errorf("got batches (events, rows) %v, want %v", batches, want)
	}
	for _, table := range []string{"events", "export_ranges", "timeline", "sub_stats"} {
		if n := rowsOf(t, db, table, s.id); n != 0 {
			t.Errorf("%s: %d rows left", table, n)
		}
	}
	if ok, err := db.DropTombstone(s.id); err != nil || ok {
		t.Fatalf("with a job left: got %v, %v; want false", ok, err)
	}
	if n, err := db.DeleteExports([]uuid.UUID{job.ID}); err != nil || n != 1 {
		t.Fatalf("DeleteExports: got %d, %v", n, err)
	}
	if ok, err := db.DropTombstone(s.id); err != nil || !ok {
		t.Fatalf("got %v, %v; want true", ok, err)
	}
}

// TestPurgeByTimeRows: the intake's ids and answers and the timeline go
// by time in batches of the limit, the cutoff compared in nanoseconds.
func TestPurgeByTimeRows(t *testing.T) {
	clk := storetest.NewClock()
	db := openTest(t, clk.Now)
	cust := uuid.New()
	t0 := clk.Now()
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Second)
		putTestRow(t, db, "intake_ids", map[string]any{"customer_id": cust, "scope": uuid.UUID{}, "id": uuid.New(), "recorded_at": at})
		putTestRow(t, db, "intake_keys", map[string]any{"customer_id": cust, "key_hash": []byte{byte(i)}, "created_at": at})
	}
	sub := uuid.New()
	for i := range 4 {
		putTestRow(t, db, "timeline", map[string]any{"subscription_id": sub, "span": "h", "start": t0.Add(time.Duration(i) * time.Hour)})
		putTestRow(t, db, "timeline", map[string]any{"subscription_id": sub, "span": "m", "start": t0.Add(time.Duration(i) * time.Minute)})
	}
	// The cutoff a nanosecond past the third: three go, in batches.
	cutoff := t0.Add(2*time.Second + time.Nanosecond)
	for name, purge := range map[string]func(time.Time, int) (int, error){"intake ids": db.PurgeIntakeIDs, "idempotency keys": db.PurgeIdempotencyKeys} {
		if n, err := purge(cutoff, 2); err != nil || n != 2 {
			t.Errorf("%s: got %d, %v; want a batch of 2", name, n, err)
		}
		if n, err := purge(cutoff, 2); err != nil || n != 1 {
			t.Errorf("%s: got %d, %v; want the third", name, n, err)
		}
		if n, err := purge(cutoff, 2); err != nil || n != 0 {
			t.Errorf("%s: got %d, %v; want none", name, n, err)
		}
	}
	// Hours that ended by the cutoff (two), and minutes older than the
	// minute window (all four, an hour and more later).
	clk.Add(2*time.Hour + 30*time.Minute)
	if n, err := db.PurgeTimeline(clk.Now(), 3); err != nil || n != 3 {
		t.Errorf("timeline: got %d, %v; want a batch of 3", n, err)
	}
	if n, err := db.PurgeTimeline(clk.Now(), 10); err != nil || n != 3 {
		t.Errorf("timeline: got %d, %v; want the last 3", n, err)
	}
	var hours int
	if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM timeline WHERE span = 'h'`).Scan(&hours); err != nil || hours != 2 {
		t.Errorf("got %d hours left, %v; want 2", hours, err)
	}
}
