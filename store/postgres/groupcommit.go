package postgres

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"hookd/store"
)

// maxGroup bounds the writes that share one transaction.
const maxGroup = 1000

// seqBlock is how many event sequence numbers a group draws from
// event_seq at a time; those it leaves unused are gaps, which nothing
// minds.
const seqBlock = 64

// errClosed is the error of writes handed to a closed store.
var errClosed = errors.New("store: closed")

// groupCommit runs the intake's and the dispatcher's writes in shared
// transactions, as the bolt backend does: the writes that arrive while a
// commit is under way go together into the next one, which starts as soon
// as that commit ends. A lone write commits at once; under load each commit
// (with its WAL flush) carries everything that arrived during the previous
// one. When a group fails, each of its writes runs again alone, so that an
// error reaches only its own caller. Its goroutine is started by Open and
// stopped by Close.
type groupCommit struct {
	db       *DB
	reqs     chan *groupWrite // unbuffered: a write is handed over only to a running loop
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	notes    *dueNotes

	commits atomic.Int64 // transactions run
	waiting atomic.Int64 // writes handed over or waiting to be
}

type groupWrite struct {
	fn    func(g *groupTx) error
	claim *idClaim // the senders' ids fn records, claimed for the group at once; nil: none
	err   chan error
}

// groupTx is the transaction a group's writes share, with what they share
// in it: the counters they change (written once, at the end), the
// subscriptions they read, the event sequence numbers drawn and the new
// events' rows (inserted by one COPY at the end). Its statements go in as
// few round trips as their reads allow: the transaction begins with the
// first batch sent (send), and writes whose results nothing reads wait in
// pending for the next.
type groupTx struct {
	ctx     context.Context
	pool    *pgxpool.Pool
	tx      pgx.Tx    // nil until the first send begins it
	pending pgx.Batch // statements queued for the next send
	now     time.Time
	stats   *statsCache
	subs    map[uuid.UUID]*store.Subscription // nil: it does not exist
	seqs    []uint64
	rows    [][]any
	// The subject of the payload inserted last: an event fanned out to
	// several subscriptions shares its payload, which is read once.
	lastPayload []byte
	lastSubject *string
	// The subscriptions with new due events, announced to the nodes
	// once the group is committed (dueNotes).
	due map[uuid.UUID]bool
}

// send sends the statements of pending and then those of b (nil: none)
// in one round trip, the transaction's BEGIN first when it has not begun.
func (g *groupTx) send(b *pgx.Batch) error {
	var all pgx.Batch
	if g.tx == nil {
		all.BeginTx(pgx.TxOptions{})
	}
	all.QueuedQueries = append(all.QueuedQueries, g.pending.QueuedQueries...)
	g.pending = pgx.Batch{}
	if b != nil {
		all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	}
	if g.tx == nil {
		br := g.pool.SendBatch(g.ctx, &all)
		g.tx = br.Tx()
		return br.Close()
	}
	if all.Len() == 0 {
		return nil
	}
	return g.tx.SendBatch(g.ctx, &all).Close()
}

// query returns the transaction for a statement of its own, once the
// statements queued before it are sent.
func (g *groupTx) query() (pgx.Tx, error) {
	if err := g.send(nil); err != nil {
		return nil, err
	}
	return g.tx, nil
}

func newGroupCommit(db *DB) *groupCommit {
	g := &groupCommit{db: db, reqs: make(chan *groupWrite), stop: make(chan struct{}), done: make(chan struct{}), notes: newDueNotes(db)}
	go g.run()
	return g
}

// do runs fn in a shared write transaction and returns its error, or the
// commit's. fn may be called more than once (the effects of a failed
// attempt are rolled back), so it must set its results afresh each time.
func (g *groupCommit) do(fn func(g *groupTx) error) error { return g.doClaim(nil, fn) }

// doClaim is do for a write that records the senders' ids of claim: the
// group claims the ids of all its writes in one statement before it runs
// them.
func (g *groupCommit) doClaim(claim *idClaim, fn func(g *groupTx) error) error {
	w := &groupWrite{fn: fn, claim: claim, err: make(chan error, 1)}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case g.reqs <- w:
	case <-g.stop:
		return errClosed
	}
	return <-w.err
}

// close stops the loop once the group under way is committed; later
// writes fail with errClosed.
func (g *groupCommit) close() {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.done
	g.notes.close()
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
// run again in its own, unless the database could not be reached: then
// each would wait for it in turn, and all fail at once instead.
func (g *groupCommit) commit(group []*groupWrite) {
	due, err := g.update(group)
	if err == nil || len(group) == 1 || errors.Is(err, store.ErrUnavailable) {
		for _, w := range group {
			w.err <- err
		}
		g.notes.add(due)
		return
	}
	for _, w := range group {
		due, err := g.update([]*groupWrite{w})
		w.err <- err
		g.notes.add(due)
	}
}

// update runs writes in one transaction (retried on a serialization
// failure or deadlock, as db.tx does) and returns the subscriptions with
// new due events it committed.
func (g *groupCommit) update(writes []*groupWrite) (map[uuid.UUID]bool, error) {
	g.commits.Add(1)
	var due map[uuid.UUID]bool
	err := g.db.retried(func(ctx context.Context) error {
		var err error
		due, err = g.updateOnce(ctx, writes)
		return err
	})
	if err != nil {
		return nil, err
	}
	return due, nil
}

// updateOnce runs writes in one transaction, begun by its first statements.
func (g *groupCommit) updateOnce(ctx context.Context, writes []*groupWrite) (map[uuid.UUID]bool, error) {
	gt := &groupTx{ctx: ctx, pool: g.db.pool, now: g.db.Now(), subs: map[uuid.UUID]*store.Subscription{}}
	gt.stats = newStatsCacheSending(func(_ context.Context, b *pgx.Batch) error { return gt.send(b) })
	defer func() {
		if gt.tx != nil {
			_ = gt.tx.Rollback(ctx) // nothing once committed
		}
	}()
	var claims []*idClaim
	for _, w := range writes {
		if w.claim != nil {
			claims = append(claims, w.claim)
		}
	}
	if err := gt.claimIDs(claims); err != nil {
		return nil, err
	}
	for _, w := range writes {
		if err := w.fn(gt); err != nil {
			return nil, err
		}
	}
	if err := gt.finish(); err != nil {
		return nil, err
	}
	if gt.tx == nil {
		return nil, nil // nothing to write
	}
	if err := gt.tx.Commit(ctx); err != nil {
		return nil, err
	}
	return gt.due, nil
}

// nextSeqs returns n fresh event sequence numbers, in increasing order.
func (g *groupTx) nextSeqs(n int) ([]uint64, error) {
	if len(g.seqs) < n {
		tx, err := g.query()
		if err != nil {
			return nil, err
		}
		rows, err := tx.Query(g.ctx, `SELECT nextval('event_seq') FROM generate_series(1, $1) ORDER BY 1`, max(n-len(g.seqs), seqBlock))
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var s int64
			if err := rows.Scan(&s); err != nil {
				return nil, err
			}
			g.seqs = append(g.seqs, uint64(s))
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(g.seqs) < n {
			return nil, errors.New("store: event_seq handed out too few numbers")
		}
	}
	out := g.seqs[:n:n]
	g.seqs = g.seqs[n:]
	return out, nil
}

// insert adds e to the events the group inserts at its end.
func (g *groupTx) insert(e *store.Event) error {
	p := e.Payload
	if len(p) == 0 || len(g.lastPayload) != len(p) || &g.lastPayload[0] != &p[0] {
		g.lastPayload, g.lastSubject = p, nil
		if t := store.SubjectText(p); t != nil {
			g.lastSubject = new(string(t))
		}
	}
	row, err := eventRow(e, g.lastSubject)
	if err != nil {
		return err
	}
	g.rows = append(g.rows, row)
	if !e.DueAt.IsZero() {
		if g.due == nil {
			g.due = map[uuid.UUID]bool{}
		}
		g.due[e.SubscriptionID] = true
	}
	return nil
}

// finish inserts the group's new events and writes its counters, with
// the statements still queued.
func (g *groupTx) finish() error {
	if len(g.rows) > 0 {
		tx, err := g.query()
		if err != nil {
			return err
		}
		if _, err := tx.CopyFrom(g.ctx, pgx.Identifier{"events"}, insertCols, pgx.CopyFromRows(g.rows)); err != nil {
			return err
		}
	}
	g.stats.queueFlush(&g.pending, g.now)
	if g.tx == nil && g.pending.Len() == 0 {
		return nil
	}
	return g.send(nil)
}

// subscriptions returns the subscriptions ids (nil for those that do not
// exist), read once per group and locked against deletion until the
// commit, so that no event is recorded for a subscription whose deletion
// committed before it.
func (g *groupTx) subscriptions(ids []uuid.UUID) (map[uuid.UUID]*store.Subscription, error) {
	var b pgx.Batch
	g.queueSubscriptions(&b, ids)
	if b.Len() > 0 {
		if err := g.send(&b); err != nil {
			return nil, err
		}
	}
	return g.subs, nil
}

// queueSubscriptions queues on b the read of subscriptions (see
// subscriptions) of ids not read yet; g.subs has them once b is sent.
func (g *groupTx) queueSubscriptions(b *pgx.Batch, ids []uuid.UUID) {
	var want []uuid.UUID
	for _, id := range ids {
		if _, ok := g.subs[id]; !ok && !slices.Contains(want, id) {
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return
	}
	b.Queue(`SELECT `+subCols+` FROM subscriptions WHERE id = ANY($1) ORDER BY id FOR KEY SHARE`, want).Query(func(rows pgx.Rows) error {
		for _, id := range want {
			g.subs[id] = nil
		}
		for rows.Next() {
			var s store.Subscription
			if err := scanSubFields(rows, &s); err != nil {
				return err
			}
			g.subs[s.ID] = &s
		}
		return rows.Err()
	})
}
