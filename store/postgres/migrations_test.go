package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
	"hookd/store/pgtest"
)

// migrationTest is the test of one migration: setup writes data of the
// version before it (through SQL, on a database at that version), check
// reads it through the store after Open migrated the database.
type migrationTest struct {
	name  string
	setup func(ctx context.Context, tx pgx.Tx) error
	check func(t *testing.T, db *DB)
}

var migrationTests = []migrationTest{
	{
		name:  "the schema on an empty database",
		setup: func(context.Context, pgx.Tx) error { return nil },
		check: func(t *testing.T, db *DB) {
			ctx := context.Background()
			for _, table := range []string{"customers", "clients", "tokens", "key_sets", "subscriptions", "sub_stats",
				"tombstones", "events", "exports", "export_ranges", "intake_ids", "intake_keys", "timeline"} {
				var n int
				if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil || n != 0 {
					t.Errorf("table %s: %d rows, %v; want it there and empty", table, n, err)
				}
			}
		},
	},
	{
		name: "the nodes table and the notification triggers, on data of version 1",
		setup: func(ctx context.Context, tx pgx.Tx) error {
			// A customer with a key set, and a subscription: the
			// triggers fire on the rows already there.
			_, err := tx.Exec(ctx, `INSERT INTO customers (id, created_at) VALUES ('5d1f3c2e-0000-4000-8000-000000000001', now());
INSERT INTO key_sets (customer_id, rotated_at) VALUES ('5d1f3c2e-0000-4000-8000-000000000001', now())`)
			return err
		},
		check: func(t *testing.T, db *DB) {
			ctx := context.Background()
			var n int
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM nodes`).Scan(&n); err != nil || n != 0 {
				t.Errorf("table nodes: %d rows, %v; want it there and empty", n, err)
			}
			conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, `LISTEN hookd_keys`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.pool.Exec(ctx, `UPDATE key_sets SET rotated_at = now()`); err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			got, err := conn.WaitForNotification(wctx)
			if err != nil {
				t.Fatalf("no notification of the key set's change: %v", err)
			}
			if got.Payload != "5d1f3c2e-0000-4000-8000-000000000001" {
				t.Errorf("got payload %q, want the customer's id", got.Payload)
			}
		},
	},
	{
		name: "the export jobs' claims and turns, on data of version 2",
		setup: func(ctx context.Context, tx pgx.Tx) error {
			// A job that a node of version 2 left writing, and one
			// waiting.
			_, err := tx.Exec(ctx, `INSERT INTO exports (id, customer_id, subscription_id, state, created_at, job) VALUES
('5d1f3c2e-0000-4000-8000-0000000000e1', '5d1f3c2e-0000-4000-8000-000000000001', '5d1f3c2e-0000-4000-8000-0000000000a1', 'writing', now(),
 '{"id":"5d1f3c2e-0000-4000-8000-0000000000e1","customerId":"5d1f3c2e-0000-4000-8000-000000000001","subscriptionId":"5d1f3c2e-0000-4000-8000-0000000000a1","state":"writing","attempts":1}'),
('5d1f3c2e-0000-4000-8000-0000000000e2', '5d1f3c2e-0000-4000-8000-000000000002', '5d1f3c2e-0000-4000-8000-0000000000a2', 'processing', now(),
 '{"id":"5d1f3c2e-0000-4000-8000-0000000000e2","customerId":"5d1f3c2e-0000-4000-8000-000000000002","subscriptionId":"5d1f3c2e-0000-4000-8000-0000000000a2","state":"processing"}')`)
			return err
		},
		check: func(t *testing.T, db *DB) {
			c := db.ExportClaims(uuid.New())
			left, ok, err := c.AbandonedExport(time.Minute)
			if err != nil || !ok || left.ID.String() != "5d1f3c2e-0000-4000-8000-0000000000e1" {
				t.Errorf("the job left writing: got %s, %v, %v; want it taken over", left.ID, ok, err)
			}
			next, ok, err := c.NextExport(time.Minute)
			if err != nil || !ok || next.ID.String() != "5d1f3c2e-0000-4000-8000-0000000000e2" {
				t.Errorf("the waiting job: got %s, %v, %v; want it claimed", next.ID, ok, err)
			}
		},
	},
	{
		name: "attempt details and the search indexes, on events of version 3",
		// Events as version 3 stores them, one whose object holds a \u0000
		// escape (which PostgreSQL's JSON types refuse) and a sub that is
		// not a string: the migration refuses none of them.
		setup: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO events (subscription_id, seq, id, type, txn, toe, payload, created_at, updated_at, state)
VALUES ('5d1f3c2e-0000-4000-8000-000000000002', 1, gen_random_uuid(), 'entityCreated', 'txn-1', 1, convert_to('{"sub":"u-1","x":"a\u0000b"}', 'UTF8'), now(), now(), 4),
       ('5d1f3c2e-0000-4000-8000-000000000002', 2, gen_random_uuid(), 'entityCreated', 'txn-2', 1, convert_to('{"sub":7}', 'UTF8'), now(), now(), 4)`)
			return err
		},
		check: func(t *testing.T, db *DB) {
			ctx := context.Background()
			var n int
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM attempt_details`).Scan(&n); err != nil || n != 0 {
				t.Errorf("table attempt_details: %d rows, %v; want it there and empty", n, err)
			}
			var seq int64
			if err := db.pool.QueryRow(ctx, `SELECT seq FROM events WHERE subscription_id = '5d1f3c2e-0000-4000-8000-000000000002' AND txn = 'txn-2'`).Scan(&seq); err != nil || seq != 2 {
				t.Errorf("search by txn: got seq %d, %v; want 2", seq, err)
			}
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE subject IS NULL`).Scan(&n); err != nil || n != 2 {
				t.Errorf("got %d events without a subject, %v; want the 2 recorded before (they have none)", n, err)
			}
			for _, index := range []string{"events_by_txn", "events_by_subject"} {
				if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE indexname = $1`, index).Scan(&n); err != nil || n != 1 {
					t.Errorf("index %s: %d, %v; want it there", index, n, err)
				}
			}
		},
	},
	{
		name: "a node's solo columns, on data of version 4",
		setup: func(ctx context.Context, tx pgx.Tx) error {
			// A live node of a hookd of version 2, which claims.
			_, err := tx.Exec(ctx, `INSERT INTO nodes (id, name, started_at, seen_at) VALUES ('5d1f3c2e-0000-4000-8000-000000000002', 'old', now(), now())`)
			return err
		},
		check: func(t *testing.T, db *DB) {
			// The node is kept (its solo columns went with migration 6).
			nodes, err := db.LiveNodes()
			if err != nil || len(nodes) != 1 || nodes[0].Name != "old" {
				t.Errorf("got live nodes %v, %v; want the old one", nodes, err)
			}
		},
	},
	{
		name: "lane claims in place of event claims, on data of version 5",
		setup: func(ctx context.Context, tx pgx.Tx) error {
			// A subscription with a due event claimed by a node of the
			// version before.
			_, err := tx.Exec(ctx, `INSERT INTO subscriptions (id, customer_id, title, endpoint, enabled, created_at, updated_at)
VALUES ('5d1f3c2e-0000-4000-8000-000000000002', '5d1f3c2e-0000-4000-8000-000000000001', 's', 'https://example.com/h', true, now(), now());
INSERT INTO nodes (id, name, started_at, seen_at) VALUES ('5d1f3c2e-0000-4000-8000-000000000003', 'old', now(), now());
INSERT INTO events (subscription_id, seq, id, type, toe, payload, created_at, updated_at, state, due_at, claimed_by, claimed_until, claimed_due)
VALUES ('5d1f3c2e-0000-4000-8000-000000000002', 1, gen_random_uuid(), 'entityCreated', 1, '\x7b7d', now(), now(), 1, now(),
	'5d1f3c2e-0000-4000-8000-000000000003', now() + interval '1 minute', now())`)
			return err
		},
		check: func(t *testing.T, db *DB) {
			ctx := context.Background()
			var n int
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM lane_claims`).Scan(&n); err != nil || n != 0 {
				t.Errorf("table lane_claims: %d rows, %v; want it there and empty (the lanes are taken by the nodes of this version)", n, err)
			}
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE due_at IS NOT NULL`).Scan(&n); err != nil || n != 1 {
				t.Errorf("got %d due events, %v; want the claimed one still due", n, err)
			}
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
WHERE (table_name = 'events' AND column_name LIKE 'claimed%') OR (table_name = 'nodes' AND column_name LIKE 'solo%')`).Scan(&n); err != nil || n != 0 {
				t.Errorf("got %d event claim or solo columns, %v; want none", n, err)
			}
			// The subscription's lane is taken by the first node that
			// reads its due events.
			c := db.Claims(ClaimOptions{Node: uuid.MustParse("5d1f3c2e-0000-4000-8000-000000000003")})
			evs, _, err := c.DueEvents(uuid.MustParse("5d1f3c2e-0000-4000-8000-000000000002"), db.Now().Add(time.Second), 10, nil)
			if err != nil || len(evs) != 1 {
				t.Errorf("the old node's claimed event read by a node holding its lane: got %d events, %v; want it", len(evs), err)
			}
		},
	},
	{
		name: "the intake's counts kept apart, on counters of version 6",
		setup: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO subscriptions (id, customer_id, title, endpoint, enabled, created_at, updated_at)
VALUES ('5d1f3c2e-0000-4000-8000-000000000002', '5d1f3c2e-0000-4000-8000-000000000001', 's', 'https://example.com/h', true, now(), now());
INSERT INTO sub_stats (subscription_id, waiting, succeeded) VALUES ('5d1f3c2e-0000-4000-8000-000000000002', 3, 4)`)
			return err
		},
		check: func(t *testing.T, db *DB) {
			// The counters are kept and read as before: the table of
			// the counts kept apart starts empty.
			var n int
			if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM intake_counts`).Scan(&n); err != nil || n != 0 {
				t.Errorf("table intake_counts: %d rows, %v; want it there and empty", n, err)
			}
			waiting, _, _, err := db.Backlog()
			if err != nil || waiting != 3 {
				t.Errorf("backlog: %d waiting, %v; want the 3 counted before", waiting, err)
			}
		},
	},
	{
		name:  "no trigger announces due events, on version 7",
		setup: func(context.Context, pgx.Tx) error { return nil },
		check: func(t *testing.T, db *DB) {
			var n int
			if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_trigger WHERE tgname = 'events_notify_due'`).Scan(&n); err != nil || n != 0 {
				t.Errorf("trigger events_notify_due: %d, %v; want it gone", n, err)
			}
			if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_proc WHERE proname = 'hookd_notify_due'`).Scan(&n); err != nil || n != 0 {
				t.Errorf("function hookd_notify_due: %d, %v; want it gone", n, err)
			}
		},
	},
}

// schemaAt creates the schema_version table at version v and applies the
// migrations before it.
func schemaAt(ctx context.Context, tx pgx.Tx, v int) error {
	if _, err := tx.Exec(ctx, `CREATE TABLE schema_version (version integer NOT NULL)`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_version VALUES ($1)`, v); err != nil {
		return err
	}
	for _, m := range migrations[:v] {
		if _, err := tx.Exec(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func version(t *testing.T, dsn string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v int
	if err := conn.QueryRow(context.Background(), `SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMigrations runs each migration on a database at the version before
// it, holding that version's data, through Open, and checks the result. A
// migration without a test fails it.
func TestMigrations(t *testing.T) {
	if len(migrationTests) != len(migrations) {
		t.Fatalf("got %d migration tests for %d migrations, want one test per migration in migrationTests", len(migrationTests), len(migrations))
	}
	ctx := context.Background()
	for i, mt := range migrationTests {
		t.Run(fmt.Sprintf("to%d %s", i+1, mt.name), func(t *testing.T) {
			dsn := pgtest.Database(t)
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if err := schemaAt(ctx, tx, i); err != nil {
					return err
				}
				return mt.setup(ctx, tx)
			})
			conn.Close(ctx)
			if err != nil {
				t.Fatalf("write a version %d database: %v", i, err)
			}
			db, err := Open(ctx, dsn, Options{})
			if err != nil {
				t.Fatalf("open at version %d: %v", i, err)
			}
			mt.check(t, db)
			db.Close()
			if got := version(t, dsn); got != SchemaVersion {
				t.Errorf("got version %d, want %d", got, SchemaVersion)
			}
		})
	}
}

// TestOpenRefusesNewerSchema: a database migrated by a newer hookd is
// refused with a message that says so, and left as it was.
func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	db, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `UPDATE schema_version SET version = $1`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, dsn, Options{})
	if !errors.Is(err, store.ErrNewerSchema) || !strings.Contains(err.Error(), fmt.Sprintf("version %d", SchemaVersion+1)) {
		t.Fatalf("got %v, want ErrNewerSchema naming version %d", err, SchemaVersion+1)
	}
	if got := version(t, dsn); got != SchemaVersion+1 {
		t.Errorf("version is %d after the refusal, want %d", got, SchemaVersion+1)
	}
}

// TestConcurrentOpensMigrateOnce: hookd processes starting at once on an
// empty database all open it, and the schema is created once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			db, err := Open(ctx, dsn, Options{MaxConns: 2})
			if err == nil {
				db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	if got := version(t, dsn); got != SchemaVersion {
		t.Errorf("got version %d, want %d", got, SchemaVersion)
	}
}

// TestUnreachableIsErrUnavailable: with the database gone, calls fail
// with store.ErrUnavailable (the API's 503) and Ping says so; when it is
// back, the same store works again without being reopened.
func TestUnreachableIsErrUnavailable(t *testing.T) {
	ctx := context.Background()
	c := pgtest.New(t)
	dsn, err := c.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, dsn, Options{QueryTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	c.Kill()
	if err := db.Ping(); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ping with the database down: %v, want ErrUnavailable", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("ping after the restart: %v", err)
	}
}
