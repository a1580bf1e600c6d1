package store

import "time"

// EventQuery selects events in Events.
type EventQuery struct {
	State  State      // 0 for any
	Type   string     // the event type ("entityCreated"...), "" for any
	After  time.Time  // created strictly after, when set
	Before time.Time  // created strictly before, when set
	Desc   bool       // newest first; oldest first when false
	Reason ReasonCode // the event's latest failure code, when set
	Offset int
	Limit  int
	// Filter, when not nil, keeps only the events for which it returns
	// true, given their sequence number and stored state. The dispatcher's
	// in-flight set is applied through it.
	Filter func(seq uint64, state State) bool
}

// Summary is a subscription's counts over its stored events.
type Summary struct {
	UpdatedAt  time.Time
	Succeeded  uint64
	Retrying   uint64 // awaiting an attempt or a retry
	Failed     uint64
	Exportable uint64 // failed and not yet exported
	// FailedBy counts the failed events by reason code (index: the code);
	// failures recorded before codes existed are in none.
	FailedBy [NumReasons]uint64
}
