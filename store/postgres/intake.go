package postgres

import (
	"bytes"
	"crypto/sha256"
	"errors"
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
// A sender's id is claimed by inserting it: of two requests with the same
// id at once (on one node or several), the second waits for the first's
// commit and finds it a duplicate.
func (db *DB) RecordIntake(in store.Intake) (store.IntakeResult, error) {
	var res store.IntakeResult
	err := db.group.do(func(g *groupTx) error {
		var err error
		res, err = g.recordIntake(in)
		return err
	})
	return res, err
}

func (g *groupTx) recordIntake(in store.Intake) (store.IntakeResult, error) {
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

	// The senders' ids, each once: a later event with an id seen earlier
	// in the request is a duplicate of it.
	var ids []uuid.UUID
	first := map[uuid.UUID]bool{}
	for _, ne := range in.Events {
		if ne.ID != (uuid.UUID{}) && !first[ne.ID] {
			first[ne.ID] = true
			ids = append(ids, ne.ID)
		}
	}
	var dup []bool
	if len(ids) > 0 {
		rows, err := g.tx.Query(g.ctx, `
INSERT INTO intake_ids (customer_id, scope, id, recorded_at)
SELECT $1, $2, u, $4 FROM unnest($3::uuid[]) AS u
ON CONFLICT DO NOTHING RETURNING id`, in.CustomerID, in.Scope, ids, g.now)
		if err != nil {
			return res, err
		}
		fresh := map[uuid.UUID]bool{}
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return res, err
			}
			fresh[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return res, err
		}
		for i, ne := range in.Events {
			if ne.ID == (uuid.UUID{}) {
				continue
			}
			if fresh[ne.ID] {
				delete(fresh, ne.ID) // the first event with the id takes it
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
	_, err = g.tx.Exec(g.ctx, `UPDATE intake_keys SET answer = $3 WHERE customer_id = $1 AND key_hash = $2`,
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
	for range 2 {
		var claimed bool
		err := g.tx.QueryRow(g.ctx, `
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
		err = g.tx.QueryRow(g.ctx, `SELECT created_at, request_hash, answer FROM intake_keys WHERE customer_id = $1 AND key_hash = $2`,
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
		tag, err := g.tx.Exec(g.ctx, `UPDATE intake_keys SET created_at = $3, request_hash = $4, answer = ''
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
