package bolt

import (
	"errors"
	"fmt"
	"hookd/store"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"go.etcd.io/bbolt"
)

// maxGroup bounds the writes that share one transaction.
const maxGroup = 1000

// groupCommit runs write functions in shared transactions: the writes
// that arrive while a commit is under way go together into the next one,
// which starts as soon as that commit ends. Unlike bbolt's Batch, no write
// waits for a timer: a lone write commits at once, and under load each
// commit (with its two fsyncs) carries everything that arrived during the
// previous one. Its goroutine is started by Open and stopped by Close.
type groupCommit struct {
	bolt     *bbolt.DB
	fault    func() error     // Options.WriteFault
	reqs     chan *groupWrite // unbuffered: a write is handed over only to a running loop
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	commits atomic.Int64 // transactions run
	waiting atomic.Int64 // writes handed over or waiting to be
}

type groupWrite struct {
	fn  func(*bbolt.Tx) error
	err chan error
}

func newGroupCommit(b *bbolt.DB, fault func() error) *groupCommit {
	g := &groupCommit{bolt: b, fault: fault, reqs: make(chan *groupWrite), stop: make(chan struct{}), done: make(chan struct{})}
	go g.run()
	return g
}

// do runs fn in a shared write transaction and returns its error, or the
// commit's. fn may be called more than once (its effects of a failed
// attempt are rolled back), so it must set its results afresh each time.
func (g *groupCommit) do(fn func(*bbolt.Tx) error) error {
	w := &groupWrite{fn: fn, err: make(chan error, 1)}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case g.reqs <- w:
	case <-g.stop:
		return bbolt.ErrDatabaseNotOpen
	}
	return <-w.err
}

// close stops the loop once the write under way is committed; later
// writes fail with bbolt.ErrDatabaseNotOpen.
func (g *groupCommit) close() {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.done
}

func (g *groupCommit) run() {
	defer close(g.done)
	group := make([]*groupWrite, 0, maxGroup)
	for {
		group = group[:0]
		select {
		case w := <-g.reqs:
			group = append(group, w)
		case <-g.stop:
			return
		}
	more:
		for len(group) < maxGroup {
			select {
			case w := <-g.reqs:
				group = append(group, w)
			default:
				break more
			}
		}
		g.commit(group)
	}
}

// commit runs the group in one transaction. When it fails, each write is
// run again in its own, so that an error reaches only its own caller.
func (g *groupCommit) commit(group []*groupWrite) {
	g.commits.Add(1)
	err := g.update(func(tx *bbolt.Tx) error {
		for _, w := range group {
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(group) == 1 {
		for _, w := range group {
			w.err <- err
		}
		return
	}
	for _, w := range group {
		g.commits.Add(1)
		w.err <- g.update(w.fn)
	}
}

// update runs fn in a write transaction, after the fault hook. A full
// file system is reported as ErrNoSpace.
func (g *groupCommit) update(fn func(*bbolt.Tx) error) error {
	return noSpace(g.bolt.Update(func(tx *bbolt.Tx) error {
		if g.fault != nil {
			if err := g.fault(); err != nil {
				return err
			}
		}
		return fn(tx)
	}))
}

// noSpace marks err as ErrNoSpace when it comes from a full file system.
// bbolt formats the error of growing its file with %s, which drops the
// errno: its text is the only sign left.
func noSpace(err error) error {
	if err != nil && (errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), syscall.ENOSPC.Error())) {
		return fmt.Errorf("%w: %w", store.ErrNoSpace, err)
	}
	return err
}
