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
	Body           []byte        // the first bytes of the response body (the dispatcher bounds them)
	Duration       time.Duration // how long the attempt took; its history row of the outcome is stamped StartedAt+Duration
	Reason         string
	Code           ReasonCode // with Retry and Failed: why, as a code
}

// OutcomeAt is the time of the history row that ends r's attempt: when the
// attempt ended, StartedAt+Duration, so that the attempt's duration is the
// time between its executing row and that row; now when the attempt has no
// duration.
func (r *AttemptResult) OutcomeAt(now time.Time) time.Time {
	if r.Duration <= 0 || r.StartedAt.IsZero() {
		return now
	}
	return r.StartedAt.Add(r.Duration).UTC()
}

// KeptAttemptDetails is how many attempts of an event keep their details
// (AttemptDetail): the last ones that had a response worth keeping.
const KeptAttemptDetails = 3

// AttemptDetail is what an attempt received beyond what the event's history
// keeps: the listener's response, its headers and the first bytes of its
// body. The store keeps it for the last KeptAttemptDetails attempts that had
// a response and either failed or answered with a body; an attempt
// delivered with an empty body keeps nothing here (the event's Response has
// its status and headers while it is the last).
//
// A detail with a body is stored with its attempt's outcome (KeepsDetail).
// A failed attempt answered without a body has nothing beyond the event's
// Response while it is the event's last: its detail is stored only when
// the next attempt is recorded (PendingDetail), and read from the Response
// until then (WithLastDetail). So an event that failed at its last attempt,
// the common failure, stores no detail of it.
type AttemptDetail struct {
	Attempt    int
	StatusCode int
	Headers    []Header
	Body       []byte
}

// KeepsDetail reports whether r's attempt has a detail to store when its
// outcome is recorded: a response with a body.
func (r *AttemptResult) KeepsDetail() bool {
	return r.StatusCode > 0 && len(r.Body) > 0
}

// Detail returns r's AttemptDetail as the attempt'th attempt of its event.
func (r *AttemptResult) Detail(attempt int) AttemptDetail {
	return AttemptDetail{Attempt: attempt, StatusCode: r.StatusCode, Headers: r.Headers, Body: r.Body}
}

// PendingDetail returns the detail of e's last attempt that e's Response
// holds (a response to an attempt that failed), for the store to keep
// before it records e's next attempt, which replaces the Response; ok is
// false when there is none. A store keeps it unless it keeps a detail of
// that attempt already (one with a body).
func PendingDetail(e *Event) (d AttemptDetail, ok bool) {
	if e.Response == nil || e.State == Success || e.Attempts == 0 {
		return AttemptDetail{}, false
	}
	return AttemptDetail{Attempt: e.Attempts, StatusCode: e.Response.StatusCode, Headers: e.Response.Headers}, true
}

// WithLastDetail returns ds, the details a store keeps of e's attempts in
// attempt order, with that of e's last attempt read from its Response when
// none of ds is (PendingDetail): the last KeptAttemptDetails of them.
func WithLastDetail(e *Event, ds []AttemptDetail) []AttemptDetail {
	if d, ok := PendingDetail(e); ok && (len(ds) == 0 || ds[len(ds)-1].Attempt != d.Attempt) {
		ds = append(ds, d)
	}
	return KeepLastDetails(ds)
}

// KeepLastDetails returns the last KeptAttemptDetails of ds, which are in
// attempt order.
func KeepLastDetails(ds []AttemptDetail) []AttemptDetail {
	if len(ds) > KeptAttemptDetails {
		return ds[len(ds)-KeptAttemptDetails:]
	}
	return ds
}

// FailWaitingBatch is the limit callers of FailWaiting pass: it bounds each
// transaction that fails a disabled subscription's waiting events.
const FailWaitingBatch = 5000
