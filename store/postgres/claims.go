package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// DefaultClaimLease is how long an event a node handed out to an attempt
// counts as out when ClaimOptions.Lease is zero and its outcome is never
// told (Claims.Recorded): longer than an attempt and the recording of its
// outcome take.
const DefaultClaimLease = time.Minute

// laneClaimLive is the SQL condition that lane claim l is held: its node
// is live (seen within NodeLease). A claim has no lease of its own: the
// node's heartbeat keeps all of its claims, and a node that died gives
// them up when it is no longer live, one that left (Member.Close) at
// once.
var laneClaimLive = fmt.Sprintf(`EXISTS (SELECT 1 FROM nodes n
	WHERE n.id = l.node_id AND n.seen_at >= now() - interval '%d milliseconds')`, NodeLease.Milliseconds())

// ClaimOptions configure a node's claims.
type ClaimOptions struct {
	// Node is the claiming node's id (Member.ID).
	Node uuid.UUID
	// Lease is how long an event handed out counts as out unless its
	// outcome is told first (see Claims.Recorded); DefaultClaimLease
	// when zero.
	Lease time.Duration
}

// Claims decide which node delivers which subscription's events: the
// deliveries of one subscription (its lane) are made by one live node at
// a time, the node holding the subscription's row in lane_claims. That
// node reads the subscription's due events as a store of one node does:
// a read, with no write per event or per round, which is what lets a
// cluster deliver about as much per database CPU as one node. And
// --max-per-endpoint, which that node's dispatcher holds, then holds for
// the whole cluster.
//
// The nodes share the subscriptions out evenly: at each heartbeat a node
// works out its share (the subscriptions over the live nodes, one more
// for the first nodes by id when they do not divide evenly), takes lanes
// nobody live holds while it has fewer, and hands lanes over while it has
// more. A lane is handed over (its row deleted) only once every event the
// node read from it has had its outcome recorded or its lease has run
// out, so that two nodes never attempt one subscription's events at once
// while both are live. A lane nobody holds (a new subscription) is taken
// by the first node whose dispatcher finds events due for it; the
// heartbeats even the shares out after that.
//
// Each read checks, with its first statement, that the node holds the lane and
// that its heartbeat is no older than half the lease (NodeLease/2): a node
// that can no longer renew its heartbeat stops reading half a lease
// before the others may take its lanes. The events a node had in flight
// when it died are attempted again by the node that takes its lanes
// (at least once).
type Claims struct {
	db *DB
	o  ClaimOptions

	mu    sync.Mutex
	lanes map[uuid.UUID]*lane // what this node knows of each subscription's lane
}

// lane is what a node knows of one subscription's lane claim.
type lane struct {
	state   laneState
	reading int                  // reads under way
	out     map[uint64]time.Time // events handed out whose outcome is not yet told, and when
	// The lane's reads of the due order start at floor, below which
	// nothing was due at the last read, and from the start when the
	// last read from the start (at full) is dueFloorFullRead old; zero
	// full: the next read starts from the start.
	floor, full time.Time
}

// The due index keeps the entries of delivered events until the
// autovacuum removes them, and a read of a lane's due order from its
// start walks every one of them, thousands after a burst. So a lane's
// read starts at a floor: the due time of the earliest event the lane's
// last read found due or in flight, or that read's time when it found
// none, less dueFloorSlack. An event written due before the floor (a
// transaction that began that much earlier than its commit, a writer's
// clock behind this node's) is found by the read from the start that
// comes every dueFloorFullRead, and whenever the lane changes hands: it is
// delayed, never left behind.
const (
	dueFloorSlack    = time.Second
	dueFloorFullRead = 5 * time.Second
)

// laneState is a lane's state as its node knows it.
type laneState uint8

const (
	laneFree    laneState = iota // not known held: take it when events are due
	laneMine                     // held by this node
	laneLeaving                  // held by this node, which reads no more and hands it over once nothing is out
	laneOthers                   // held by another node, as the last heartbeat saw; looked at again by the next
)

// Claims returns node o.Node's claims on the subscriptions' lanes.
func (db *DB) Claims(o ClaimOptions) *Claims {
	if o.Lease <= 0 {
		o.Lease = DefaultClaimLease
	}
	return &Claims{db: db, o: o, lanes: map[uuid.UUID]*lane{}}
}

// laneOf returns sub's lane, made when unknown; c.mu is held.
func (c *Claims) laneOf(sub uuid.UUID) *lane {
	l := c.lanes[sub]
	if l == nil {
		l = &lane{out: map[uint64]time.Time{}}
		c.lanes[sub] = l
	}
	return l
}

// DueEvents is store.Events.DueEvents for one node of several: the due
// events of sub when this node holds its lane (taking it first when
// nobody does), else none and no next due time: the lane sleeps until
// the node takes it at a heartbeat, which wakes it (MemberOptions.Due). A
// node's dispatcher calls it in place of the store's.
func (c *Claims) DueEvents(sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool) ([]store.Event, time.Time, error) {
	c.mu.Lock()
	l := c.laneOf(sub)
	state := l.state
	c.mu.Unlock()
	switch state {
	case laneOthers, laneLeaving:
		return nil, time.Time{}, nil
	case laneFree:
		took, err := c.take(sub)
		if err != nil {
			return nil, time.Time{}, err
		}
		c.mu.Lock()
		if l.state == laneFree {
			l.state = laneOthers
			if took {
				l.state = laneMine
			}
		}
		state = l.state
		c.mu.Unlock()
		if state != laneMine {
			return nil, time.Time{}, nil
		}
	}

	c.mu.Lock()
	if l.state != laneMine { // a heartbeat in between
		c.mu.Unlock()
		return nil, time.Time{}, nil
	}
	l.reading++
	from := l.floor
	if l.full.IsZero() || now.Sub(l.full) >= dueFloorFullRead {
		from = time.Time{}
	}
	c.mu.Unlock()
	var held bool
	// The check that this node still holds the lane goes with the first
	// read of the due order.
	ctx, cancel := c.db.ctx()
	events, next, first, err := dueEvents(ctx, c.db.pool, sub, now, limit, skip, from, func(b *pgx.Batch) {
		b.Queue(fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM lane_claims l JOIN nodes n ON n.id = l.node_id
WHERE l.subscription_id = $1 AND l.node_id = $2 AND n.seen_at >= now() - interval '%d milliseconds')`, (NodeLease/2).Milliseconds()),
			sub, c.o.Node).QueryRow(func(row pgx.Row) error { return row.Scan(&held) })
	}, func() bool { return !held })
	cancel()
	err = mapErr(err)
	c.mu.Lock()
	defer c.mu.Unlock()
	l.reading--
	if err != nil {
		return nil, time.Time{}, err
	}
	if !held {
		// Taken by another node (this one was not live for a while), or
		// this node's heartbeat is late: the next heartbeat looks again.
		if l.state == laneMine {
			l.state, l.full = laneOthers, time.Time{}
		}
		return nil, time.Time{}, nil
	}
	l.floor = now.Add(-dueFloorSlack)
	if !first.IsZero() && first.Before(l.floor) {
		l.floor = first
	}
	if from.IsZero() {
		l.full = now
	}
	at := c.db.Now()
	for _, e := range events {
		l.out[e.Seq] = at
	}
	return events, next, nil
}

// take claims sub's lane for this node unless a live node holds it, and
// reports whether this node holds it now.
func (c *Claims) take(sub uuid.UUID) (bool, error) {
	var took bool
	err := c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO lane_claims AS l (subscription_id, node_id, claimed_at)
SELECT id, $2, now() FROM subscriptions WHERE id = $1
ON CONFLICT (subscription_id) DO UPDATE SET node_id = excluded.node_id, claimed_at = excluded.claimed_at
WHERE l.node_id = excluded.node_id OR NOT `+laneClaimLive+`
RETURNING subscription_id`, sub, c.o.Node)
		if err != nil {
			return err
		}
		defer rows.Close()
		took = rows.Next()
		rows.Close()
		return rows.Err()
	})
	return took, err
}

// Recorded is told the attempts whose outcomes were stored: their events
// are no longer out.
func (c *Claims) Recorded(results []store.AttemptResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range results {
		if l := c.lanes[r.SubscriptionID]; l != nil {
			delete(l.out, r.Seq)
		}
	}
}

// Held returns the subscriptions whose lanes this node holds, leaving
// ones included, in byte order.
func (c *Claims) Held() []uuid.UUID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var subs []uuid.UUID
	for sub, l := range c.lanes {
		if l.state == laneMine || l.state == laneLeaving {
			subs = append(subs, sub)
		}
	}
	return sortedIDs(subs)
}

// renew is called by the member's heartbeat, after its write, with the
// live nodes: it hands over the lanes that are leaving and have nothing
// out, brings what the node knows in line with lane_claims, and takes or
// hands over lanes towards the node's share. It returns the lanes it now
// holds and did not know it held (taken just now, among others), whose
// dispatcher lanes must be woken.
func (c *Claims) renew(live []uuid.UUID) ([]uuid.UUID, error) {
	// Events out longer than a lease are no longer counted out: the
	// lease is longer than an attempt and the recording of its outcome
	// take, so their outcome was lost (they are attempted again).
	now := c.db.Now()
	c.mu.Lock()
	var leave []uuid.UUID
	for sub, l := range c.lanes {
		for seq, at := range l.out {
			if now.Sub(at) > c.o.Lease {
				delete(l.out, seq)
			}
		}
		if l.state == laneLeaving && l.reading == 0 && len(l.out) == 0 {
			leave = append(leave, sub)
		}
	}
	c.mu.Unlock()

	var (
		mine, took []uuid.UUID
		share      int // this node's share of the lanes
	)
	err := c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if len(leave) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM lane_claims WHERE subscription_id = ANY($1) AND node_id = $2`, leave, c.o.Node); err != nil {
				return err
			}
		}
		var total int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM subscriptions`).Scan(&total); err != nil {
			return err
		}
		share = shareOf(c.o.Node, live, total)
		rows, err := tx.Query(ctx, `SELECT subscription_id FROM lane_claims WHERE node_id = $1`, c.o.Node)
		if err != nil {
			return err
		}
		mine, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		if want := share - len(mine); want > 0 {
			// Lanes nobody live holds, those of dead nodes included.
			rows, err := tx.Query(ctx, `INSERT INTO lane_claims AS l (subscription_id, node_id, claimed_at)
SELECT s.id, $1, now() FROM subscriptions s
WHERE NOT EXISTS (SELECT 1 FROM lane_claims l WHERE l.subscription_id = s.id AND `+laneClaimLive+`)
ORDER BY s.id LIMIT $2
ON CONFLICT (subscription_id) DO UPDATE SET node_id = excluded.node_id, claimed_at = excluded.claimed_at
WHERE NOT `+laneClaimLive+`
RETURNING subscription_id`, c.o.Node, want)
			if err != nil {
				return err
			}
			took, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sub := range leave {
		if l := c.lanes[sub]; l != nil && l.state == laneLeaving {
			l.state = laneOthers
		}
	}
	held := map[uuid.UUID]bool{}
	for _, sub := range slices.Concat(mine, took) {
		held[sub] = true
	}
	var woken []uuid.UUID
	// Lanes this node thought it held and no longer does (taken while it
	// was not live) are others'; those it holds and thought it did not
	// (taken just now, or held again once its heartbeat was on time)
	// are woken.
	var keep []uuid.UUID
	for sub := range held {
		l := c.laneOf(sub)
		switch l.state {
		case laneFree, laneOthers:
			l.state, l.full = laneMine, time.Time{}
			woken = append(woken, sub)
		}
		if l.state == laneMine {
			keep = append(keep, sub)
		}
	}
	for sub, l := range c.lanes {
		if !held[sub] && (l.state == laneMine || l.state == laneLeaving) {
			l.state = laneOthers
		}
	}
	// Over its share, the node hands over the lanes with least out.
	if extra := len(keep) - share; extra > 0 {
		slices.SortFunc(keep, func(a, b uuid.UUID) int { return len(c.lanes[a].out) - len(c.lanes[b].out) })
		for _, sub := range keep[:extra] {
			c.lanes[sub].state = laneLeaving
		}
	}
	return sortedIDs(woken), nil
}

// shareOf is node's share of total lanes over the live nodes: total/n,
// and one more for the first total%n nodes by id. A node not among live
// (its heartbeat not yet seen) has a share of none.
func shareOf(node uuid.UUID, live []uuid.UUID, total int) int {
	ids := sortedIDs(live)
	i := slices.Index(ids, node)
	if i < 0 {
		return 0
	}
	share := total / len(ids)
	if i < total%len(ids) {
		share++
	}
	return share
}
