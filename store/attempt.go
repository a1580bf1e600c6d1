package store

import (
	"time"

	"github.com/google/uuid"
)

// NewEvent is one accepted event before fan-out.
type NewEvent struct {
	ID      uuid.UUID // the sender's id, the jti of its tokens; zero when none
	Type    string
	Txn     string
	Toe     int64
	Payload []byte
}

// Delivery names one event for one subscription in AddEvents.
type Delivery struct {
	SubscriptionID uuid.UUID
	Event          int // index into the events slice
}

// Added is one recorded event.
type Added struct {
	SubscriptionID uuid.UUID
	ID             uuid.UUID
	State          State
}

// Outcome is how an attempt ended.
type Outcome uint8

// Attempt outcomes.
const (
	Delivered Outcome = iota + 1 // 2xx
	Retry                        // try again at RetryAt unless the schedule is spent
	Failed                       // fail at once
)

// AttemptResult is the result of one attempt, recorded by RecordAttempts.
type AttemptResult struct {
	SubscriptionID uuid.UUID
	Seq            uint64
	StartedAt      time.Time
	Endpoint       string // where the attempt went: the subscription's endpoint at the time
	JWS            string // the token sent, for Endpoint; replaces the stored one
	Outcome        Outcome
	RetryAt        time.Time // with Retry; zero when the schedule is spent
	StatusCode     int       // 0 when there was no response
	Headers        []Header
	Reason         string
	Code           ReasonCode // with Retry and Failed: why, as a code
}

// FailWaitingBatch is the limit callers of FailWaiting pass: it bounds each
// transaction that fails a disabled subscription's waiting events.
const FailWaitingBatch = 5000
