package store

import "testing"

// TestCounters: an event's moves between states move its count, never
// below zero; reaching success or failure counts as an outcome; failures
// are counted by code.
func TestCounters(t *testing.T) {
	var c Counters
	c.Count(0, AwaitingExecuting)
	c.Count(0, AwaitingExecuting)
	c.Count(AwaitingExecuting, AwaitingRetry)
	c.Count(AwaitingRetry, Failure)
	c.FailedAs(ReasonStatus5xx)
	c.Count(AwaitingExecuting, Success)
	want := Counters{Failed: 1, Succeeded: 1, SucceededNow: 1, FailedNow: 1}
	want.FailedBy[ReasonStatus5xx] = 1
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	// A redelivered failure leaves failure and its code.
	c.Count(Failure, AwaitingExecuting)
	c.Unfailed(ReasonStatus5xx)
	if c.Failed != 0 || c.Waiting != 1 || c.FailedBy[ReasonStatus5xx] != 0 {
		t.Fatalf("after a redelivery: %+v, want none failed and one waiting", c)
	}
	// Nothing goes below zero, and a code out of range is ignored.
	c.Count(Failure, 0)
	c.Count(AwaitingRetry, 0)
	c.Unfailed(ReasonTimeout)
	c.FailedAs(NumReasons)
	c.Unfailed(NumReasons)
	if c.Failed != 0 || c.Retrying != 0 || c.FailedBy[ReasonTimeout] != 0 {
		t.Fatalf("got %+v, want no count below zero", c)
	}
}
