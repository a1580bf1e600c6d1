package store

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// State is an event's delivery state.
type State uint8

// The delivery states. Executing is never stored: the dispatcher reports it
// for attempts in flight, and an attempt cut short by a crash is simply
// attempted again.
const (
	AwaitingExecuting State = iota + 1
	Executing
	AwaitingRetry
	Success
	Failure
)

var stateNames = [...]string{
	AwaitingExecuting: "awaiting-executing",
	Executing:         "executing",
	AwaitingRetry:     "awaiting-retry",
	Success:           "success",
	Failure:           "failure",
}

// String returns the API name of the state.
func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// ParseState parses an API state name.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n != "" && n == name {
			return State(i), true
		}
	}
	return 0, false
}

// Header is one response header as recorded.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Response is what the listener answered to the last attempt.
type Response struct {
	StatusCode int
	Headers    []Header
}

// HistoryEntry is one state change of an event.
type HistoryEntry struct {
	At         time.Time
	State      State
	Attempt    int
	StatusCode int
	Reason     string
	Code       ReasonCode // why, as a code, on rows of failed attempts and failures
	// Endpoint is the URL an attempt went to, on the executing row of
	// each attempt; empty on other rows and on rows stored before it was
	// recorded.
	Endpoint string
}

// Event is one event as recorded for one subscription.
type Event struct {
	SubscriptionID uuid.UUID
	Seq            uint64
	ID             uuid.UUID
	Jti            uuid.UUID // the sender's id of the event, its tokens' jti; zero: the jti is ID
	Type           string
	Txn            string
	Toe            int64
	Payload        []byte // the event object, compact JSON
	Endpoint       string // the token's audience: the endpoint of the last attempt, or of the recording before any
	CreatedAt      time.Time
	UpdatedAt      time.Time
	State          State
	Attempts       int
	RoundStart     int       // Attempts when the current schedule began (redelivery starts a new one)
	DueAt          time.Time // next attempt, while awaiting
	FailSeq        uint64    // failure sequence, 0 when never failed or exported before
	FailedAt       time.Time
	Reason         ReasonCode // the code of the latest failed attempt or failure; ReasonNone if none
	ExportedAt     time.Time  // kept once an exported event leaves failure
	JWS            string     // the token as sent, once signed
	Response       *Response
	History        []HistoryEntry
}

// JTI returns the jti of e's tokens: the sender's id when it gave one,
// else the event's id.
func (e *Event) JTI() uuid.UUID {
	if e.Jti != (uuid.UUID{}) {
		return e.Jti
	}
	return e.ID
}
