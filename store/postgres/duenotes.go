package postgres

import (
	"strings"
	"sync"

	"github.com/google/uuid"
)

// dueNotesPerPayload is how many subscriptions one hookd_due notification
// carries, comma separated: a payload stays far below PostgreSQL's 8000
// bytes.
const dueNotesPerPayload = 100

// dueNotes announces the subscriptions with new due events to every node
// (hookd_due, see Member), after the transaction that recorded them has
// committed, in a statement of its own whose commit does not wait for its
// flush to disk.
//
// A NOTIFY in the recording transaction would do it at its commit, but
// PostgreSQL orders the commits of notifying transactions under one lock
// of the database held through their flush to disk: the intake of every
// node would commit one at a time, each after the other's flush. Here
// only the notifications wait for each other, and not for the disk. A
// notification lost with the process (between the commit and this) or
// with the database costs the other nodes their rescan (store.Rescan, a
// second); this node's own dispatcher hears of its intake directly.
//
// One goroutine, started by newDueNotes and stopped by close, sends what
// gathered while it sent the last, so that a busy intake sends a
// notification per round trip rather than per commit.
type dueNotes struct {
	db   *DB
	mu   sync.Mutex
	subs map[uuid.UUID]bool // gathered, not yet sent
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newDueNotes(db *DB) *dueNotes {
	n := &dueNotes{db: db, subs: map[uuid.UUID]bool{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go n.run()
	return n
}

// add gathers subs for the next notification.
func (n *dueNotes) add(subs map[uuid.UUID]bool) {
	if len(subs) == 0 {
		return
	}
	n.mu.Lock()
	for s := range subs {
		n.subs[s] = true
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// close sends what is gathered and stops the goroutine.
func (n *dueNotes) close() {
	close(n.stop)
	<-n.done
}

func (n *dueNotes) run() {
	defer close(n.done)
	for {
		select {
		case <-n.wake:
			n.send()
		case <-n.stop:
			n.send()
			return
		}
	}
}

// send sends the gathered subscriptions. An error drops them: the nodes'
// rescans find their events.
func (n *dueNotes) send() {
	n.mu.Lock()
	subs := n.subs
	n.subs = map[uuid.UUID]bool{}
	n.mu.Unlock()
	if len(subs) == 0 {
		return
	}
	ids := make([]uuid.UUID, 0, len(subs))
	for s := range subs {
		ids = append(ids, s)
	}
	ids = sortedIDs(ids)
	var payloads []string
	for len(ids) > 0 {
		k := min(len(ids), dueNotesPerPayload)
		parts := make([]string, k)
		for i, id := range ids[:k] {
			parts[i] = id.String()
		}
		payloads, ids = append(payloads, strings.Join(parts, ",")), ids[k:]
	}
	// One statement is its own transaction: the setting holds for its
	// commit, in one round trip.
	ctx, cancel := n.db.ctx()
	defer cancel()
	_, _ = n.db.pool.Exec(ctx, `SELECT set_config('synchronous_commit', 'off', true), pg_notify($2, p) FROM unnest($1::text[]) AS p`, payloads, channelDue)
}
