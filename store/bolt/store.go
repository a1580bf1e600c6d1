// Package bolt is hookd's embedded store: all of its state in one bbolt file.
//
// Every exported method of DB owns its transaction; unexported helpers take a
// *bbolt.Tx. Records are decoded inside the transaction and never outlive it
// as bbolt slices. Keys are fixed-width and sort in the order they are read:
// UUIDs as their 16 bytes, times as big-endian Unix nanoseconds, sequence
// numbers as big-endian uint64.
//
// The bucket tree:
//
//	meta
//	  "version"                                  -> uint64 schema version
//	customers
//	  <customerID 16>                            -> customer (JSON)
//	clients
//	  <clientID 16>                              -> client (JSON: customer, secret hash)
//	clientsByCustomer
//	  <customerID 16><clientID 16>               -> nil
//	tokens
//	  <sha256(token) 32>                         -> token (JSON: customer, client, scope, expiry)
//	tokenExpiry
//	  <expiresAt 8><sha256(token) 32>            -> nil
//	keys
//	  <customerID 16>                            -> key set (JSON: previous, current, next: the RS256 keys as PKCS#8 DER; others: the ES256 and EdDSA triples, each key with its alg)
//	subscriptions
//	  <subscriptionID 16>                        -> subscription (JSON)
//	subsByCustomer
//	  <customerID 16><createdAt 8><subscriptionID 16> -> nil
//	subTitles
//	  <customerID 16><title>                     -> subscriptionID 16
//	subStats
//	  <subscriptionID 16>                        -> counters per state, failure sequence, export watermark
//	events
//	  <subscriptionID 16><seq 8>                 -> event (binary, see eventcodec.go)
//	due
//	  <subscriptionID 16><dueAt 8><seq 8>        -> nil   awaiting-executing and awaiting-retry
//	failures
//	  <subscriptionID 16><failSeq 8>             -> seq 8 failed events in failure order
//	exports
//	  <jobID 16>                                 -> export job (JSON)
//	exportsBySub
//	  <subscriptionID 16><createdAt 8><jobID 16> -> nil
//	exportsActive
//	  <createdAt 8><jobID 16>                    -> nil   jobs in processing or writing
//	exportRanges
//	  <subscriptionID 16><toFailSeq 8>           -> jobID 16, completed jobs with events only
//	tombstones
//	  <subscriptionID 16>                        -> customerID 16, deleted subscriptions still being purged
//	intakeIds
//	  <customerID 16><event id 16>               -> recordedAt 8   senders' event ids, for the retention
//	  <customerID 16><scope 16><event id 16>     -> recordedAt 8   ids of a scoped intake (a replay's jtis, by subscription)
//	intakeIdsByTime
//	  <recordedAt 8><customerID 16>[<scope 16>]<event id 16> -> nil
//	intakeKeys
//	  <customerID 16><sha256(key) 32>            -> createdAt 8, sha256(request) 32, answer body
//	intakeKeysByTime
//	  <createdAt 8><customerID 16><sha256(key) 32> -> nil   for IdempotencyKeyTTL
//	timeline
//	  <subscriptionID 16><hour start 8>          -> succeeded 8, failed 8   outcomes per hour, for the retention
//	timelineMinutes
//	  <subscriptionID 16><minute start 8>        -> succeeded 8, failed 8   outcomes per minute, for MinuteWindow
//	attemptDetails
//	  <subscriptionID 16><seq 8>                 -> the responses of the event's last attempts (attemptdetails.go), when kept
//	strings
//	  <id 8>                                     -> string   strings event records share (strtable.go)
//	stringIds
//	  <string>                                   -> id 8
//
// Event sequence numbers come from the events bucket's sequence and grow
// with time, so a subscription's events are stored oldest first and the
// janitor finds expired events at the front of each subscription's range.
// An event's public id embeds its sequence number (see EventID), so an event
// is found by id without a secondary index.
//
// Export bookkeeping costs the same for ten events and ten million: every
// event that enters failure for the first time while unexported takes the
// next failure sequence of its subscription. An export job covers the
// failure sequences (watermark, upper] where upper is read when the job
// starts; completing the job moves the subscription's watermark to upper in
// the same transaction that marks the job completed. An event counts as
// exported when its failure sequence is at or below the watermark.
// exportRanges maps a completed range's upper bound to its job, so that an
// event shows when it was exported. Jobs in processing or writing are
// listed in exportsActive, oldest first: the scope rule (one active job per
// customer or per subscription), the exporter's queue and the refusal to
// redeliver events of a range being exported read it.
package bolt

import (
	"errors"
	"fmt"
	"hookd/store"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

func conflict(format string, args ...any) error {
	return &store.ConflictError{Reason: fmt.Sprintf(format, args...)}
}

var (
	bucketMeta              = []byte("meta")
	bucketCustomers         = []byte("customers")
	bucketClients           = []byte("clients")
	bucketClientsByCustomer = []byte("clientsByCustomer")
	bucketTokens            = []byte("tokens")
	bucketTokenExpiry       = []byte("tokenExpiry")
	bucketKeys              = []byte("keys")
	bucketSubscriptions     = []byte("subscriptions")
	bucketSubsByCustomer    = []byte("subsByCustomer")
	bucketSubTitles         = []byte("subTitles")
	bucketSubStats          = []byte("subStats")
	bucketEvents            = []byte("events")
	bucketDue               = []byte("due")
	bucketFailures          = []byte("failures")
	bucketExports           = []byte("exports")
	bucketExportsBySub      = []byte("exportsBySub")
	bucketExportRanges      = []byte("exportRanges")
	bucketExportsActive     = []byte("exportsActive")
	bucketTombstones        = []byte("tombstones")
	bucketIntakeIDs         = []byte("intakeIds")
	bucketIntakeIDsByTime   = []byte("intakeIdsByTime")
	bucketIntakeKeys        = []byte("intakeKeys")
	bucketIntakeKeysByTime  = []byte("intakeKeysByTime")
	bucketTimeline          = []byte("timeline")
	bucketTimelineMinutes   = []byte("timelineMinutes")
	bucketAttemptDetails    = []byte("attemptDetails")

	keyVersion = []byte("version")
)

// FileName is the name of the bbolt file inside the data directory.
const FileName = "hookd.db"

// DefaultLockTimeout bounds the wait for another process's file lock when
// Options.LockTimeout is zero.
const DefaultLockTimeout = 3 * time.Second

// pageSize is the page size of a new store file (an existing file keeps
// its own). An event record with its token, response and history is about
// 1 KB, so a 4 KB page holds three or four and the splits as records grow
// at their first attempt leave pages 60 % used (1,750 file bytes per
// 1,080-byte record, filled with the bench's full-store phase); 16 KB
// pages with the update fill of RecordAttempts are 84 % used (1,280).
const pageSize = 16 << 10

// DB is hookd's store.
type DB struct {
	subsVersion atomic.Uint64
	bolt        *bbolt.DB
	group       *groupCommit // the intake's, the recorded attempts' and the token endpoint's writes
	strings     *strTable    // the event records' shared strings
	customers   sync.Map     // uuid.UUID -> struct{}: customers known to exist (CustomerExists)
	arenas      sync.Pool    // *[]byte: RecordAttempts' record arenas, returned when their transaction has committed
	path        string
	now         func() time.Time
}

// Options tune Open.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// NoSync skips fsync (tests and benchmarks of other layers only).
	NoSync bool
	// WriteFault, when set, is called in every shared write transaction
	// (the intake's and the recorded attempts', see groupCommit) before
	// its writes; an error fails and rolls back the transaction as a full
	// disk would. Tests of failure handling only.
	WriteFault func() error
	// LockTimeout bounds the wait for another process's lock on the file,
	// after which Open fails with ErrLocked; DefaultLockTimeout when zero.
	LockTimeout time.Duration
}

// Open opens (creating when needed) the store in dir and runs migrations.
func Open(dir string, o Options) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	// The freelist is written at every commit (a few pages: 8 bytes per
	// free page) so that opening reads it instead of every page of the
	// file: 1 ms instead of 2 to 7 s for a 0.6 to 1.2 GB file in the page
	// cache, 82 s for 12.4 GB from the disk (bench/RESULTS.md, "bbolt
	// options"). A file written without it is scanned once, at its first
	// open, and has it from its first commit on.
	// The array freelist keeps the free page ids sorted, so writing it
	// at every commit is a copy; the map freelist sorts them every time,
	// which after the janitor freed tens of thousands of pages cost more
	// than the deliveries' own work (bench/RESULTS.md, "bbolt options").
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:         o.LockTimeout,
		FreelistType:    bbolt.FreelistArrayType,
		NoFreelistSync:  false,
		InitialMmapSize: 1 << 30,
		NoSync:          o.NoSync,
		PageSize:        pageSize,
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (is another hookd running on this data directory?)", store.ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := &DB{bolt: b, path: path, now: o.Now}
	if db.now == nil {
		db.now = time.Now
	}
	if err := b.Update(migrate); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.View(func(tx *bbolt.Tx) (err error) { db.strings, err = loadStrTable(tx); return err }); err != nil {
		b.Close()
		return nil, fmt.Errorf("read the string table: %w", err)
	}
	// A file without a synced freelist (written by an earlier hookd) has
	// every page read at its first open to rebuild it; drop those pages
	// from the resident set (they stay cached), or a large store would
	// start with all of its file resident.
	_ = b.View(func(tx *bbolt.Tx) error { db.releaseMapped(tx); return nil })
	db.group = newGroupCommit(b, o.WriteFault)
	return db, nil
}

// Close finishes the write under way and closes the file. No method may
// be called after it.
func (db *DB) Close() error {
	db.group.close()
	return db.bolt.Close()
}

// Path returns the file's path.
func (db *DB) Path() string { return db.path }

// Check runs bbolt's consistency check and returns the first problem found.
func (db *DB) Check() error {
	return db.bolt.View(func(tx *bbolt.Tx) error {
		var first error
		for err := range tx.Check() { // drained: the checker reads tx until it closes the channel
			if first == nil {
				first = err
			}
		}
		return first
	})
}

// Now returns the store's clock reading.
func (db *DB) Now() time.Time { return db.now() }
