package delivery

import (
	"testing"
	"testing/synctest"
	"time"
)

// The recorder's linger ends as soon as it holds the outcome of every
// attempt that holds a slot (none other can come until they are stored),
// and otherwise waits out the linger for more.
func TestGatherEndsWhenEveryAttemptReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &Dispatcher{results: make(chan outcome, 4), sem: make(chan struct{}, 4)}
		d.sem <- struct{}{}
		d.sem <- struct{}{}
		d.results <- outcome{}
		start := time.Now()
		batch := d.gather([]outcome{{}}, recordLinger, maxRecordBatch)
		if len(batch) != 2 || time.Since(start) != 0 {
			t.Errorf("two attempts in flight, both reported: gathered %d outcomes after %v, want 2 at once", len(batch), time.Since(start))
		}

		d.sem <- struct{}{} // a third attempt, still in flight
		start = time.Now()
		batch = d.gather(batch, recordLinger, maxRecordBatch)
		if len(batch) != 2 || time.Since(start) != recordLinger {
			t.Errorf("an attempt still in flight: gathered %d outcomes after %v, want 2 after the linger, %v", len(batch), time.Since(start), recordLinger)
		}
	})
}
