// Package storetest is the behaviour suite of store.Store: one set of
// tests that every backend passes, run by each backend's own tests with a
// function that opens a fresh, empty store of that backend.
//
//	func TestContract(t *testing.T) { storetest.Run(t, openForTest) }
//
// The suite speaks only through the contract. What a backend keeps to
// itself (the bolt file's buckets, the PostgreSQL schema's migrations) is
// tested in the backend's package.
package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"hookd/store"
)

// Opener opens a fresh, empty store on the clock now; the store is closed
// at the end of the test (the opener registers that with t.Cleanup).
type Opener func(t *testing.T, now func() time.Time) store.Store

// Clock is a settable clock for the store under test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock reading a fixed, whole-second start time.
func NewClock() *Clock { return &Clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// suite lists the behaviour tests by name; each file of the package adds
// its own in an init function.
var suite = map[string]func(t *testing.T, open Opener){}

func register(tests map[string]func(t *testing.T, open Opener)) {
	for name, fn := range tests {
		if _, dup := suite[name]; dup {
			panic("storetest: " + name + " registered twice")
		}
		suite[name] = fn
	}
}

// Run runs the whole suite against the backend open opens, each test as a
// subtest of its own name.
func Run(t *testing.T, open Opener) {
	names := make([]string, 0, len(suite))
	for name := range suite {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fn := suite[name]
		t.Run(name, func(t *testing.T) { fn(t, open) })
	}
}
