// Package store is the contract of hookd's state (Store) and the records
// it is made of, shared by its two backends:
//
//	store/bolt      the embedded default: one bbolt file under --data
//	store/postgres  PostgreSQL 15 or newer, for several nodes on one database
//	store/storetest the behaviour suite both backends pass
//
// The records are plain values: ids are UUIDs, times are time.Time, states
// and reason codes are small enums with stable names. Neither backend's
// encoding leaks into them.
package store

import (
	"errors"
	"time"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound reports that a record does not exist (or belongs to another customer).
	ErrNotFound = errors.New("not found")
	// ErrConflict reports that a change conflicts with the current state.
	ErrConflict = errors.New("conflict")
	// ErrLimit reports that a configured limit was reached.
	ErrLimit = errors.New("limit reached")
	// ErrNewerSchema reports a store whose schema is newer than this hookd knows.
	ErrNewerSchema = errors.New("the store was written by a newer version of hookd")
	// ErrLocked reports that another process holds the data file (bolt).
	ErrLocked = errors.New("data file is in use by another process")
	// ErrUnavailable reports a store that cannot be reached now (a
	// database server down or out of reach); calls succeed again once it
	// is back.
	ErrUnavailable = errors.New("the store is unavailable")
	// ErrNoSpace reports a write refused for lack of space: the file
	// system is full, or below the reserve kept for deliveries.
	ErrNoSpace = errors.New("no space left for the store")
)

// ConflictError is an ErrConflict with a client-facing reason.
type ConflictError struct{ Reason string }

// Error returns the reason.
func (e *ConflictError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// DefaultRetention is how long hookd keeps events, export jobs and export
// files (SPEC: seven days). The store itself deletes nothing by age: the
// janitor purges what is older (jobs), and the export API stops showing
// jobs older than it (httpapi); both are handed the configured value.
const DefaultRetention = 7 * 24 * time.Hour
