package store

import (
	"crypto/sha256"
	"errors"
	"time"

	"github.com/google/uuid"
)

// IdempotencyKeyTTL is how long the answer to an intake request with an
// Idempotency-Key is kept for a retry of that request.
const IdempotencyKeyTTL = 24 * time.Hour

// ErrKeyReused reports an Idempotency-Key sent again with another request.
var ErrKeyReused = errors.New("the idempotency key was used with another request")

// Intake is one intake request to record with RecordIntake.
type Intake struct {
	CustomerID uuid.UUID
	// Events are the accepted events; an event's ID, when not zero, is the
	// sender's id: an id the customer's events already carried (or an
	// earlier event of the same request) makes the event a duplicate,
	// which is not recorded again.
	Events     []NewEvent
	Deliveries []Delivery
	// Scope, when not zero, keeps the senders' ids apart from the
	// customer's intake: they are recorded, and looked for, under Scope
	// alone. A replay of an export file to a subscription scopes its jtis
	// by the subscription, so that the intake's record of the same ids
	// (the events the file holds) does not hide them, and a second replay
	// to the same subscription records nothing twice.
	Scope uuid.UUID
	// Key is the request's Idempotency-Key (empty: none) and RequestHash
	// a hash of what the request asks; a key seen within IdempotencyKeyTTL
	// answers with its first answer, or ErrKeyReused when the hash differs.
	Key         string
	RequestHash [sha256.Size]byte
	// Answer makes the answer body kept under Key from the result; it runs
	// inside the transaction and may run more than once.
	Answer func(IntakeResult) ([]byte, error)
}

// IntakeResult is what RecordIntake did.
type IntakeResult struct {
	Added      []Added
	Duplicates []int // indexes into Intake.Events of the duplicates, in order
	// Replay is the answer kept under the request's key when the request
	// was a repeat: nothing else was done.
	Replay []byte
}
