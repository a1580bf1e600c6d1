package postgres

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// RecordIntake records an intake request in one transaction: the events
// (less the duplicates) for their deliveries as AddEvents does, the
// senders' ids of the new events, and the answer under the request's key.
// Concurrent calls share commits.
//
// A sender's id is claimed by inserting it, the ids of every request of a
// group commit in one statement before the requests run: of two requests
// with the same id at once (on one node or several), the second waits for
// the first's commit and finds it a duplicate. (So a request that replays
// the answer under its key claims its ids too; they are the ids its first
// time recorded, unless the janitor forgot them meanwhile.)
func (db *DB) RecordIntake(in store.Intake) (store.IntakeResult, error) {
	var res store.IntakeResult
	claim := newIDClaim(in)
	err := db.group.doClaim(claim, func(g *groupTx) error {
		var err error
		res, err = g.recordIntake(in, claim)
		return err
	})
	return res, err
}

// idClaim is a request's claim of its senders' ids: the distinct ids in
// the order of its events, and those that were new (fresh), as claimIDs
// found them.
type idClaim struct {
	customer, scope uuid.UUID
	ids             []uuid.UUID
	fresh           map[uuid.UUID]bool // nil until claimed
}

// newIDClaim returns the claim of in's senders' ids, nil when it has none.
func newIDClaim(in store.Intake) *idClaim {
	var c *idClaim
	for _, ne := range in.Events {
		if ne.ID == (uuid.UUID{}) {
			continue
		}
		if c == nil {
			c = &idClaim{customer: in.CustomerID, scope: in.Scope}
		}
		if !slices.Contains(c.ids, ne.ID) {
			c.ids = append(c.ids, ne.ID)
		}
	}
	return c
}

// claimIDs claims the ids of claims in one statement, in the order of the
// claims: an id that two of them claim is fresh for the first only.
func (g *groupTx) claimIDs(claims []*idClaim) error {
	type key struct{ customer, scope, id uuid.UUID }
	owner := map[key]*idClaim{}
	var customers, scopes, ids []uuid.UUID
	for _, c := range claims {
		c.fresh = map[uuid.UUID]bool{}
		for _, id := range c.ids {
			k := key{c.customer, c.scope, id}
			if owner[k] == nil {
				owner[k] = c
				customers, scopes, ids = append(customers, c.customer), append(scopes, c.scope), append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	tx, err := g.query()
	if err != nil {
		return err
	}
	rows, err := tx.Query(g.ctx, `
INSERT INTO intake_ids (customer_id, scope, id, recorded_at)
SELECT c, s, i, $4 FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS u(c, s, i)
ON CONFLICT DO NOTHING RETURNING customer_id, scope, id`, customers, scopes, ids, g.now)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.customer, &k.scope, &k.id); err != nil {
			return err
		}
		if c := owner[k]; c != nil {
			c.fresh[k.id] = true
		}
	}
	return rows.Err()
}

// recordIntake records in; claim is its ids' claim (newIDClaim), which the
// group made before, or which it makes when the group did not.
func (g *groupTx) recordIntake(in store.Intake, claim *idClaim) (store.IntakeResult, error) {
	var res store.IntakeResult
	var keyHash []byte
	if in.Key != "" {
		h := sha256.Sum256([]byte(in.Key))
		keyHash = h[:]
		replay, err := g.claimKey(in.CustomerID, keyHash, in.RequestHash[:])
		if err != nil || replay != nil {
			res.Replay = replay
			return res, err
		}
	}
	var dup []bool
	if claim != nil {
		if claim.fresh == nil {
			if err := g.claimIDs([]*idClaim{claim}); err != nil {
				return res, err
			}
		}
		// The first event with a fresh id takes it; the others with an
		// id are duplicates.
		taken := map[uuid.UUID]bool{}
		for i, ne := range in.Events {
			if ne.ID == (uuid.UUID{}) {
				continue
			}
			if claim.fresh[ne.ID] && !taken[ne.ID] {
				taken[ne.ID] = true
				continue
			}
			if dup == nil {
				dup = make([]bool, len(in.Events))
			}
			dup[i] = true
			res.Duplicates = append(res.Duplicates, i)
		}
	}
	var err error
	res.Added, err = g.addEvents(in.Events, in.Deliveries, dup)
	if err != nil || in.Key == "" {
		return res, err
	}
	body, err := in.Answer(res)
	if err != nil {
		return res, err
	}
	if body == nil {
		body = []byte{} // NOT NULL: an empty answer is kept as empty
	}
	tx, err := g.query()
	if err != nil {
		return res, err
	}
	_, err = tx.Exec(g.ctx, `UPDATE intake_keys SET answer = $3 WHERE customer_id = $1 AND key_hash = $2`,
		in.CustomerID, keyHash, body)
	return res, err
}

// claimKey claims an intake request's Idempotency-Key (keyHash) for this
// transaction, or returns the answer kept under it. The claim is a row
// inserted with an empty answer, which the request's answer replaces
// before the commit: a request with the same key at once, on this node or
// another, waits for that commit and then finds the answer. A key seen
// within store.IdempotencyKeyTTL with another request hash is
// store.ErrKeyReused; an expired one (not yet purged) is claimed afresh.
func (g *groupTx) claimKey(customer uuid.UUID, keyHash, reqHash []byte) (replay []byte, err error) {
	tx, err := g.query()
	if err != nil {
		return nil, err
	}
	for range 2 {
		var claimed bool
		err := tx.QueryRow(g.ctx, `
INSERT INTO intake_keys (customer_id, key_hash, created_at, request_hash, answer) VALUES ($1, $2, $3, $4, '')
ON CONFLICT (customer_id, key_hash) DO NOTHING RETURNING true`, customer, keyHash, g.now, reqHash).Scan(&claimed)
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		var at time.Time
		var kept, answer []byte
		err = tx.QueryRow(g.ctx, `SELECT created_at, request_hash, answer FROM intake_keys WHERE customer_id = $1 AND key_hash = $2`,
			customer, keyHash).Scan(&at, &kept, &answer)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // purged meanwhile: claim it again
		}
		if err != nil {
			return nil, err
		}
		if g.now.Sub(at) < store.IdempotencyKeyTTL {
			if !bytes.Equal(kept, reqHash) {
				return nil, store.ErrKeyReused
			}
			if answer == nil {
				answer = []byte{}
			}
			return answer, nil
		}
		// Expired: take it over, unless another request did first.
		tag, err := tx.Exec(g.ctx, `UPDATE intake_keys SET created_at = $3, request_hash = $4, answer = ''
WHERE customer_id = $1 AND key_hash = $2 AND created_at = $5`, customer, keyHash, g.now, reqHash, at)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 1 {
			return nil, nil
		}
	}
	return nil, errors.New("store: the idempotency key changed hands while it was claimed")
}
