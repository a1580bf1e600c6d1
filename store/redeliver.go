package store

import "time"

// FailedQuery selects failed events to redeliver; its zero value selects
// all of them.
type FailedQuery struct {
	After  time.Time  // created strictly after, when set
	Before time.Time  // created strictly before, when set
	Reason ReasonCode // failed with this code, when set
}

// Pace spreads the due times of the events one RedeliverFailed requeues:
// the i-th falls due at Start + i*Every, Start being the store's clock
// when it is zero or earlier. Its zero value makes every one due at once.
//
// A recovery paces its batches this way so that a live event, due when it
// is recorded, sorts before the recovered events that are not yet due, and
// so that the recovered attempts start one by one at the recovery's rate
// instead of a batch at once.
type Pace struct {
	Start time.Time
	Every time.Duration
}

// Due returns the due time of the i-th event requeued at now.
func (p Pace) Due(now time.Time, i int) time.Time {
	start := now
	if p.Start.After(now) {
		start = p.Start
	}
	return start.Add(time.Duration(i) * p.Every)
}
