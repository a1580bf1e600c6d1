package postgres

import (
	"context"
	"fmt"
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

// claimScanSlack is how many rows past the limit a claim reads, for those
// the caller skips.
const claimScanSlack = 64

// claimHeld is the SQL condition that event row e holds a live claim at
// the time in parameter now: made for its current due time, within its
// lease, by a live node. A node that died gives up its claims once it is
// no longer live (NodeLease), which is sooner than their lease, and a
// node that left (Member.Close) at once. Never NULL.
func claimHeld(now string) string {
	return fmt.Sprintf(`coalesce(e.claimed_due = e.due_at AND e.claimed_until > %s
	AND EXISTS (SELECT 1 FROM nodes n WHERE n.id = e.claimed_by AND n.seen_at >= now() - interval '%d milliseconds'), false)`,
		now, NodeLease.Milliseconds())
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
type Claims struct {
	db *DB
	o  ClaimOptions
}

// Claims returns node o.Node's claims on the database's due events.
func (db *DB) Claims(o ClaimOptions) *Claims {
	if o.Lease <= 0 {
		o.Lease = DefaultClaimLease
	}
	return &Claims{db: db, o: o}
}

// claim claims up to limit of sub's events due at now that hold no live
// claim (claimHeld) and that skip does not name, oldest due first, and returns their
// sequence numbers and the due time of the first event left (zero when
// none; claimRetry from now when the cluster-wide bound withheld due
// events). A claim holds until now + Lease, and ends at once when the
// event's due time changes (its outcome is recorded, or it is
// redelivered).
func (c *Claims) claim(ctx context.Context, tx pgx.Tx, sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool) ([]uint64, time.Time, error) {
	// The claims of one subscription's events are made one node at a
	// time, so that counting the others' claims and making new ones is
	// one decision.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 1))`, sub.String()); err != nil {
		return nil, time.Time{}, err
	}
	n, capped := limit, false
	if c.o.MaxPerEndpoint > 0 {
		// Every live claim counts, this node's too: limit is what the
		// node's own bound leaves, the free places are the cluster's.
		var held int
		// claimHeld spelt out, so that events_claims serves it.
		if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM events e
WHERE e.subscription_id = $1 AND e.due_at IS NOT NULL AND e.claimed_until > $2 AND e.claimed_due = e.due_at
	AND EXISTS (SELECT 1 FROM nodes n WHERE n.id = e.claimed_by AND n.seen_at >= now() - interval '%d milliseconds')`,
			NodeLease.Milliseconds()), sub, now).Scan(&held); err != nil {
			return nil, time.Time{}, err
		}
		if free := c.o.MaxPerEndpoint - held; free < n {
			n, capped = max(free, 0), true
		}
	}
	if capped && n == 0 {
		return nil, now.Add(claimRetry), nil // the cluster's bound is reached
	}
	// Rows being written (an outcome being recorded) are passed over.
	rows, err := tx.Query(ctx, `SELECT e.seq, e.due_at FROM events e
WHERE e.subscription_id = $1 AND e.due_at IS NOT NULL AND NOT `+claimHeld("$2")+`
ORDER BY e.due_at, e.seq LIMIT $3 FOR UPDATE OF e SKIP LOCKED`, sub, now, n+claimScanSlack)
	if err != nil {
		return nil, time.Time{}, err
	}
	var (
		seqs []uint64
		next time.Time
	)
	for rows.Next() {
		var seq int64
		var at time.Time
		if err := rows.Scan(&seq, &at); err != nil {
			rows.Close()
			return nil, time.Time{}, err
		}
		if at.After(now) || len(seqs) >= n {
			next = at.UTC()
			break
		}
		if skip != nil && skip(uint64(seq)) {
			continue
		}
		seqs = append(seqs, uint64(seq))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, err
	}
	if capped && len(seqs) == n && !next.IsZero() && !next.After(now) {
		next = now.Add(claimRetry)
	}
	if len(seqs) == 0 {
		return nil, next, nil
	}
	ids := make([]int64, len(seqs))
	for i, s := range seqs {
		ids[i] = int64(s)
	}
	if _, err := tx.Exec(ctx, `UPDATE events SET claimed_by = $3, claimed_until = $4, claimed_due = due_at
WHERE subscription_id = $1 AND seq = ANY($2)`, sub, ids, c.o.Node, now.Add(c.o.Lease)); err != nil {
		return nil, time.Time{}, err
	}
	return seqs, next, nil
}

// DueEvents is store.Events.DueEvents for one node of several: it claims
// the events it returns (see claim), in the transaction that reads them.
// A node's dispatcher calls it in place of the store's.
func (c *Claims) DueEvents(sub uuid.UUID, now time.Time, limit int, skip func(seq uint64) bool) (events []store.Event, next time.Time, err error) {
	err = c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		events, next = nil, time.Time{}
		seqs, n, err := c.claim(ctx, tx, sub, now, limit, skip)
		if err != nil || len(seqs) == 0 {
			next = n
			return err
		}
		next = n
		events, err = eventsBySeq(ctx, tx, true, sub, seqs)
		return err
	})
	return events, next, err
}
