package store

// Counters are a subscription's events counted by state. Both backends
// keep them with every change of an event's state, through the methods
// below, so that the summary, the backlog and the timeline count the same
// on both and never read the events themselves.
type Counters struct {
	Waiting   uint64 // awaiting-executing
	Retrying  uint64 // awaiting-retry
	Succeeded uint64
	Failed    uint64
	// FailedBy counts the events in failure by their reason code; those
	// that failed before codes were recorded are in none of them.
	FailedBy [NumReasons]uint64
	// SucceededNow and FailedNow count the events that reached success
	// and failure since the backend last added them to the timeline; they
	// are not stored with the counters.
	SucceededNow, FailedNow uint64
}

// Count moves one event's contribution from state from to state to; zero
// for either is no state (an event recorded or deleted).
func (c *Counters) Count(from, to State) {
	dec := func(p *uint64) {
		if *p > 0 {
			*p--
		}
	}
	switch from {
	case AwaitingExecuting:
		dec(&c.Waiting)
	case AwaitingRetry:
		dec(&c.Retrying)
	case Success:
		dec(&c.Succeeded)
	case Failure:
		dec(&c.Failed)
	}
	switch to {
	case AwaitingExecuting:
		c.Waiting++
	case AwaitingRetry:
		c.Retrying++
	case Success:
		c.Succeeded++
		c.SucceededNow++
	case Failure:
		c.Failed++
		c.FailedNow++
	}
}

// FailedAs counts an event entering failure with code.
func (c *Counters) FailedAs(code ReasonCode) {
	if code < NumReasons {
		c.FailedBy[code]++
	}
}

// Unfailed uncounts an event leaving failure with code.
func (c *Counters) Unfailed(code ReasonCode) {
	if code < NumReasons && c.FailedBy[code] > 0 {
		c.FailedBy[code]--
	}
}
