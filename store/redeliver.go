package store

import "time"

// FailedQuery selects failed events to redeliver; its zero value selects
// all of them.
type FailedQuery struct {
	After  time.Time  // created strictly after, when set
	Before time.Time  // created strictly before, when set
	Reason ReasonCode // failed with this code, when set
}
