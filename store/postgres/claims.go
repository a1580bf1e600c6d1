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

// DefaultClaimLease is how long a node's claim on a due event holds when
// ClaimOptions.Lease is zero: longer than an attempt and the recording of
// its outcome take, short enough that the events of a node that died are
// attempted by the others soon after.
const DefaultClaimLease = time.Minute

// claimRetry is how soon a subscription's lane looks again for due events
// that the cluster-wide bound on its attempts withheld.
const claimRetry = 100 * time.Millisecond

// claimHeld is the SQL condition that event row e holds a live claim at
// the time in parameter now: made for its current due time, within its
// lease, by a live node. A node that died gives up its claims once it is
// no longer live (NodeLease), which is sooner than their lease, and a
// node that left (Member.Close) at once. Never NULL; the node's row is
// read only for a claim that has not expired (CASE, unlike AND, decides
// the order), so that the rows of unclaimed events cost no lookup.
func claimHeld(now string) string {
	return fmt.Sprintf(`CASE WHEN e.claimed_due = e.due_at AND e.claimed_until > %s
	THEN EXISTS (SELECT 1 FROM nodes n WHERE n.id = e.claimed_by AND n.seen_at >= now() - interval '%d milliseconds')
	ELSE false END`, now, NodeLease.Milliseconds())
}

// ClaimOptions configure a node's claims.
type ClaimOptions struct {
	// Node is the claiming node's id (Member.ID).
	Node uuid.UUID
	// Lease is how long a claim holds unless the attempt's outcome is
	// recorded first; DefaultClaimLease when zero.
	Lease time.Duration
	// MaxPerEndpoint bounds the claims held at once on one subscription's
	// events over all nodes; zero leaves them unbounded.
	MaxPerEndpoint int
}

// Claims hands one node the due events that no other node is attempting.
//
// A node alone needs no claims, which cost a write per round: while it is
// the only live node it is solo (Member's heartbeat decides, see
// renewSolo) and reads its due events as a store of one node does. The
// nodes' row records it (nodes.solo_until, solo_clear), and the others
// claim nothing while a live node's solo_clear is ahead. A node that finds
// others live at a heartbeat stops reading without claims at once, and
// clears solo_clear once every event it handed out unclaimed has had its
// outcome recorded (Recorded), so that a node that joins starts claiming
// within a heartbeat or two of its arrival plus an attempt. Taking solo
// and claiming exclude each other through an advisory lock (soloLock):
// the claims that were made before are seen and respected by the solo
// node's reads, and no claim is made after.
type Claims struct {
	db *DB
	o  ClaimOptions

	mu      sync.Mutex
	solo    bool                    // this node reads without claims
	soloSet bool                    // its row's solo_clear may be ahead
	reading int                     // solo reads under way
	held    map[heldEvent]time.Time // events handed out unclaimed whose outcome is not yet recorded, and when
}

// heldEvent names an event handed out without a claim.
type heldEvent struct {
	sub uuid.UUID
	seq uint64
}

// soloLock is the SQL of the advisory lock key that orders taking solo
// (exclusive) against claiming (shared).
const soloLock = `hashtextextended('hookd solo', 0)`

// soloRetry is how soon a subscription's lane looks again while another
// node is solo.
const soloRetry = time.Second

// Claims returns node o.Node's claims on the database's due events.
func (db *DB) Claims(o ClaimOptions) *Claims {
	if o.Lease <= 0 {
		o.Lease = DefaultClaimLease
	}
	return &Claims{db: db, o: o, held: map[heldEvent]time.Time{}}
}

// renewSolo is called by the member's heartbeat with the number of live
// nodes it just counted. Alone, the node takes (or keeps) solo for
// NodeLease/2 from now, unless another node turned up meanwhile; with
// others, it stops reading without claims and clears its row's solo_clear
// once nothing it handed out unclaimed is still out.
func (c *Claims) renewSolo(live int) error {
	if live == 1 {
		alone := false
		err := c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
			// After the claims under way (their shared lock), and before
			// any new one.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+soloLock+`)`); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE nodes SET solo_until = now() + interval '%[1]d milliseconds',
	solo_clear = now() + interval '%[1]d milliseconds' + interval '%[2]d milliseconds'
WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM nodes o WHERE o.id <> $1 AND o.seen_at >= now() - interval '%[3]d milliseconds')`,
				(NodeLease/2).Milliseconds(), c.o.Lease.Milliseconds(), NodeLease.Milliseconds()), c.o.Node)
			alone = tag.RowsAffected() == 1
			return err
		})
		if err != nil {
			return err
		}
		if alone {
			c.mu.Lock()
			c.solo, c.soloSet = true, true
			c.mu.Unlock()
			return nil
		}
	}
	c.mu.Lock()
	c.solo = false
	// An event handed out longer than a lease ago is no longer counted
	// out: the lease is longer than an attempt and the recording of its
	// outcome take, so its outcome was lost (it is attempted again).
	for e, at := range c.held {
		if c.db.Now().Sub(at) > c.o.Lease {
			delete(c.held, e)
		}
	}
	// No solo read can start now; none is under way and nothing handed
	// out is still out: the others may claim.
	clear := c.soloSet && c.reading == 0 && len(c.held) == 0
	c.mu.Unlock()
	if !clear {
		return nil
	}
	err := c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE nodes SET solo_until = NULL, solo_clear = NULL WHERE id = $1`, c.o.Node)
		return err
	})
	if err == nil {
		c.mu.Lock()
		c.soloSet = c.solo
		c.mu.Unlock()
	}
	return err
}

// Solo reports whether the node reads its due events without claims.
func (c *Claims) Solo() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.solo
}

// Recorded is told the attempts whose outcomes were stored: those handed
// out unclaimed are no longer out.
func (c *Claims) Recorded(results []store.AttemptResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) == 0 {
		return
	}
	for _, r := range results {
		delete(c.held, heldEvent{r.SubscriptionID, r.Seq})
	}
}

// heldOf counts the events of sub handed out unclaimed and still out.
func (c *Claims) heldOf(sub uuid.UUID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for e := range c.held {
		if e.sub == sub {
			n++
		}
	}
	return n
}

// soloDue reads sub's due events without claiming them, as a store of one
// node does, passing over those with a live claim (made before the node
// was alone). ok is false when the node's row no longer says it is solo
// (solo_until passed, or its heartbeat is late): then it must claim.
func (c *Claims) soloDue(sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool) (events []store.Event, next time.Time, ok bool, err error) {
	err = c.db.read(func(ctx context.Context, tx pgx.Tx) error {
		events, next, ok = nil, time.Time{}, false
		if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM nodes
WHERE id = $1 AND solo_until > now() AND seen_at >= now() - interval '%d milliseconds')`, (NodeLease/2).Milliseconds()), c.o.Node).Scan(&ok); err != nil || !ok {
			return err
		}
		var err error
		events, next, err = dueEvents(ctx, tx, sub, now, limit, skip, `NOT (`+claimHeld("$5")+`)`, now)
		return err
	})
	return events, next, ok, err
}

// claim claims up to limit of sub's events due at now that hold no live
// claim (claimHeld) and that skip does not name, oldest due first, and
// returns them and the due time of the first event left (zero when none;
// now when more may be due; claimRetry from now when the cluster-wide
// bound withheld due events). A claim holds until now + Lease, and ends
// at once when the event's due time changes (its outcome is recorded, or
// it is redelivered).
//
// A round is four statements: the locks (the subscription's only under a
// bound), the scan that locks the rows it may claim and one more (whose
// due time is next), whether another node is solo with the count of the
// subscription's live claims, and the update that claims them and
// returns them; a round that finds nothing due is the first two.
func (c *Claims) claim(ctx context.Context, tx pgx.Tx, sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool) ([]store.Event, time.Time, error) {
	// No claim while another node is solo (see Claims); the shared lock
	// orders this claim before or after a node's taking solo. The claims
	// of one subscription's events are made one node at a time, so that
	// counting the others' claims and making new ones is one decision
	// (without a bound, SKIP LOCKED alone keeps the nodes' claims apart).
	//
	// The claim's commit does not wait for its flush to disk
	// (synchronous_commit off for this transaction): it is seen by the
	// others at once all the same, and a database crash that loses it
	// loses only a claim, whose event another node may then attempt too
	// (at least once, as after any crash). It saves a disk flush per
	// round. The count of live claims reads events_claims by a plain
	// index scan, not a bitmap scan: the index holds every claim of the
	// last lease, the row versions of recorded outcomes included until
	// vacuum; a plain scan marks the dead ones once and then passes over
	// them without reading their rows (measured on 8,000 claims of which
	// 28 live: 85 buffers and 0.1 ms against 457 buffers and 0.5 ms).
	if _, err := tx.Exec(ctx, `SELECT set_config('synchronous_commit', 'off', true), set_config('enable_bitmapscan', 'off', true),
	pg_advisory_xact_lock_shared(`+soloLock+`),
	CASE WHEN $2 THEN pg_advisory_xact_lock(hashtextextended($1, 1)) END`, sub.String(), c.o.MaxPerEndpoint > 0); err != nil {
		return nil, time.Time{}, err
	}
	// Rows being written (an outcome being recorded) are passed over. One
	// row more than the claims is read, for the next due time, and as
	// many more as this node handed out unclaimed while it was solo,
	// which are still out and which skip passes over. A round that finds
	// nothing due (as most of those woken by another node's intake do)
	// ends here, without the count.
	scan := limit + 1 + c.heldOf(sub)
	rows, err := tx.Query(ctx, `SELECT e.seq, e.due_at FROM events e
WHERE e.subscription_id = $1 AND e.due_at IS NOT NULL AND NOT (`+claimHeld("$2")+`)
ORDER BY e.due_at, e.seq LIMIT $3 FOR UPDATE OF e SKIP LOCKED`, sub, now, scan)
	if err != nil {
		return nil, time.Time{}, err
	}
	var (
		seqs []int64
		next time.Time
		read int
	)
	for rows.Next() {
		var seq int64
		var at time.Time
		if err := rows.Scan(&seq, &at); err != nil {
			rows.Close()
			return nil, time.Time{}, err
		}
		read++
		if at.After(now) || len(seqs) >= limit {
			next = at.UTC()
			break
		}
		if skip != nil && skip(uint64(seq)) {
			continue
		}
		seqs = append(seqs, seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, err
	}
	if next.IsZero() && read == scan {
		next = now // events skipped took the place of others perhaps due
	}
	if len(seqs) == 0 {
		return nil, next, nil
	}
	// A statement after the lock's, so that it sees what a node taking
	// solo committed before this claim got the lock: whether another
	// node is solo and, under a bound, every live claim of sub, this
	// node's too (limit is what the node's own bound leaves, the free
	// places are the cluster's; claimHeld spelt out, so that
	// events_claims serves it).
	var (
		soloElsewhere bool
		held          int
	)
	if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM nodes
	WHERE id <> $3 AND solo_clear > now() AND seen_at >= now() - interval '%[1]d milliseconds'),
CASE WHEN $4 THEN (SELECT count(*) FROM events e
	WHERE e.subscription_id = $1 AND e.due_at IS NOT NULL AND e.claimed_until > $2 AND e.claimed_due = e.due_at
	AND EXISTS (SELECT 1 FROM nodes n WHERE n.id = e.claimed_by AND n.seen_at >= now() - interval '%[1]d milliseconds')) ELSE 0 END`,
		NodeLease.Milliseconds()), sub, now, c.o.Node, c.o.MaxPerEndpoint > 0).Scan(&soloElsewhere, &held); err != nil {
		return nil, time.Time{}, err
	}
	if soloElsewhere {
		return nil, now.Add(soloRetry), nil
	}
	if free := c.o.MaxPerEndpoint - held; c.o.MaxPerEndpoint > 0 && free < len(seqs) {
		// The cluster's bound withholds due events: look again soon.
		seqs, next = seqs[:max(free, 0)], now.Add(claimRetry)
	}
	if len(seqs) == 0 {
		return nil, next, nil
	}
	evs, err := queryEvents(ctx, tx, true, `UPDATE events SET claimed_by = $3, claimed_until = $4, claimed_due = due_at
WHERE subscription_id = $1 AND seq = ANY($2) RETURNING `+eventCols, sub, seqs, c.o.Node, now.Add(c.o.Lease))
	if err != nil {
		return nil, time.Time{}, err
	}
	pos := make(map[uint64]int, len(seqs))
	for i, s := range seqs {
		pos[uint64(s)] = i
	}
	slices.SortFunc(evs, func(a, b store.Event) int { return pos[a.Seq] - pos[b.Seq] })
	return evs, next, nil
}

// DueEvents is store.Events.DueEvents for one node of several: it claims
// the events it returns (see claim), in the transaction that reads them.
// A node's dispatcher calls it in place of the store's.
func (c *Claims) DueEvents(sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool) (events []store.Event, next time.Time, err error) {
	c.mu.Lock()
	solo := c.solo
	if solo {
		c.reading++
	}
	c.mu.Unlock()
	if solo {
		var ok bool
		events, next, ok, err = c.soloDue(sub, now, limit, skip)
		c.mu.Lock()
		for _, e := range events {
			c.held[heldEvent{sub, e.Seq}] = c.db.Now()
		}
		c.reading--
		c.mu.Unlock()
		if ok || err != nil {
			return events, next, err
		}
	}
	err = c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		events, next, err = c.claim(ctx, tx, sub, now, limit, skip)
		return err
	})
	return events, next, err
}
