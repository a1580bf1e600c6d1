// Package postgres is hookd's store on PostgreSQL 15 or newer, through
// jackc/pgx v5 (the maintained, pure Go driver with its own connection
// pool, binary protocol and batched queries; database/sql would hide the
// batches and COPY that group commits use).
//
// The schema is migrations.go's; one row per record, the same records as
// the bolt backend (see store/bolt's package doc), with indexes where the
// bolt backend has index buckets. Every exported method runs in one
// transaction, bounded by Options.QueryTimeout; a database that cannot be
// reached makes methods fail with store.ErrUnavailable, and the pool
// connects again by itself when it is back.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"hookd/store"
)

// DefaultQueryTimeout bounds each method's transaction when
// Options.QueryTimeout is zero.
const DefaultQueryTimeout = 10 * time.Second

// DefaultMaxConns is the pool size when Options.MaxConns is zero.
const DefaultMaxConns = 16

// migrationLock is the advisory lock key that serializes migrations of
// processes starting at once on one database.
const migrationLock = 0x686f6f6b64 // "hookd"

// Options configure Open.
type Options struct {
	// Now is the clock; time.Now when nil. Its readings are truncated to
	// microseconds, PostgreSQL's precision.
	Now func() time.Time
	// QueryTimeout bounds each method's transaction; DefaultQueryTimeout
	// when zero.
	QueryTimeout time.Duration
	// MaxConns is the pool's size; DefaultMaxConns when zero.
	MaxConns int32

	tracer pgx.QueryTracer // sees the statements sent (tests); none when nil
}

// DB is hookd's store on a PostgreSQL database.
type DB struct {
	pool        *pgxpool.Pool
	now         func() time.Time
	timeout     time.Duration
	subsVersion atomic.Uint64
	group       *groupCommit // the intake's and the dispatcher's shared commits

	// base is canceled by Close, so that calls in flight end.
	base      context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
}

var _ store.Store = (*DB)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, as libpq takes), creates or migrates the schema and returns the
// store. A database whose schema is newer than this hookd's is refused
// with store.ErrNewerSchema.
func Open(ctx context.Context, dsn string, o Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store URL: %w", err)
	}
	cfg.MaxConns = o.MaxConns
	if o.tracer != nil {
		cfg.ConnConfig.Tracer = o.tracer
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db := &DB{pool: pool, now: o.Now, timeout: o.QueryTimeout}
	if db.now == nil {
		db.now = time.Now
	}
	if db.timeout == 0 {
		db.timeout = DefaultQueryTimeout
	}
	db.base, db.cancel = context.WithCancel(context.Background())
	db.group = newGroupCommit(db)
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// SchemaVersion is the schema version this hookd writes.
var SchemaVersion = len(migrations)

// migrate applies the migrations the database lacks, under an advisory
// lock so that processes starting at once migrate it once.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return mapErr(err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLock)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
		return mapErr(err)
	}
	var version int
	err = conn.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := conn.Exec(ctx, `INSERT INTO schema_version VALUES (0)`); err != nil {
			return mapErr(err)
		}
	case err != nil:
		return mapErr(err)
	}
	if version > len(migrations) {
		return fmt.Errorf("%w: the database's schema is version %d, this hookd knows up to %d", store.ErrNewerSchema, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, v+1)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %d: %w", v+1, mapErr(err))
		}
	}
	return nil
}

// Close closes the pool once the group commit under way has committed;
// other calls in flight are canceled.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.group.close()
		db.cancel()
		db.pool.Close()
	})
	return nil
}

// Now returns the store's clock reading, truncated to microseconds.
func (db *DB) Now() time.Time { return db.now().Truncate(time.Microsecond) }

// pingTimeout bounds Ping: /readyz answers within it while the database
// is out of reach.
const pingTimeout = 2 * time.Second

// Ping reports whether the database can be reached now.
func (db *DB) Ping() error {
	ctx, cancel := context.WithTimeout(db.base, pingTimeout)
	defer cancel()
	return mapErr(db.pool.Ping(ctx))
}

// SubscriptionsVersion changes whenever this process creates, changes or
// deletes a subscription.
func (db *DB) SubscriptionsVersion() uint64 { return db.subsVersion.Load() }

// ctx is the context of one method's work.
func (db *DB) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(db.base, db.timeout)
}

// tx runs fn in a read-write transaction and commits it; a serialization
// failure or deadlock is retried.
func (db *DB) tx(fn func(ctx context.Context, tx pgx.Tx) error) error {
	return db.retried(func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
	})
}

// retried runs fn, a transaction from its start to its commit, again
// after a serialization failure or deadlock, up to three times, within
// one method's time.
func (db *DB) retried(fn func(ctx context.Context) error) error {
	ctx, cancel := db.ctx()
	defer cancel()
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if attempt < 3 && retryable(err) {
			continue
		}
		return mapErr(err)
	}
}

// readRow reads one row with one statement outside any transaction
// (dest as pgx.Row.Scan): a statement reads one snapshot by itself, so a
// transaction would only add its BEGIN and COMMIT, two round trips.
func (db *DB) readRow(sql string, args []any, dest ...any) error {
	ctx, cancel := db.ctx()
	defer cancel()
	return mapErr(db.pool.QueryRow(ctx, sql, args...).Scan(dest...))
}

// read runs fn in a read-only transaction, so that what it reads is one
// snapshot.
func (db *DB) read(fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := db.ctx()
	defer cancel()
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead},
		func(tx pgx.Tx) error { return fn(ctx, tx) })
	return mapErr(err)
}

// SQLSTATE codes hookd tells apart.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeDiskFull             = "53100"
)

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == codeSerializationFailure || pe.Code == codeDeadlockDetected)
}

// isUnique reports a unique constraint's violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == codeUniqueViolation
}

// mapErr maps the driver's errors onto the store's: no rows is
// store.ErrNotFound, a full disk store.ErrNoSpace, a database that cannot
// be reached (or a call cut off by the timeout) store.ErrUnavailable.
// Store errors pass through.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrNotFound
	case errors.As(err, &pe):
		if pe.Code == codeDiskFull {
			return fmt.Errorf("%w: %s", store.ErrNoSpace, pe.Message)
		}
		// Class 08 is a connection exception, 57P0x the server shutting
		// down or unreachable: the database is not there.
		if len(pe.Code) == 5 && (pe.Code[:2] == "08" || pe.Code[:4] == "57P0") {
			return fmt.Errorf("%w: %s", store.ErrUnavailable, pe.Message)
		}
		return err
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrLimit),
		errors.Is(err, store.ErrNoSpace), errors.Is(err, store.ErrKeyReused), errors.Is(err, store.ErrUnavailable):
		return err
	case pgconn.SafeToRetry(err), pgconn.Timeout(err), errors.Is(err, context.DeadlineExceeded), isConnectError(err):
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
