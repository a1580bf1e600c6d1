package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// exportQueueLock names the advisory lock under which the nodes take
// export jobs from the queue one at a time, so that reading the turns and
// handing the next one is one decision over the cluster. Jobs are few and
// their claims rare: the lock costs nothing worth counting.
const exportQueueLock = "hookd export queue"

// errClaimLost is the conflict of a change a node makes to a job whose
// claim it no longer holds: it lapsed and another node took the job over.
var errClaimLost = &store.ConflictError{Reason: "the export job's claim was lost: another node took it over"}

// exportWaiting is the SQL condition that export row e waits for a writer
// at the time in parameter $1: in processing, past its retry time, and not
// claimed by a node, or claimed under a lease that ran out.
const exportWaiting = `e.state = 'processing' AND coalesce((e.job->>'retryAt')::timestamptz <= $1, true)
	AND coalesce(e.claimed_until <= $1, true)`

// ExportClaims hands one node the export jobs of the database, each with
// a claim under a lease: the node that claimed a job alone changes it
// while the claim holds (its changes are fenced by the claim's token), and
// a claim not renewed within its lease is lost to the next node that
// looks, so that a node which died writing leaves its job to the others.
// The order in which jobs are handed out is the fair queue of the single
// process (jobs.Exporter), kept in the database for all the nodes: the
// next job is the oldest waiting one of the customer whose turn came
// longest ago.
type ExportClaims struct {
	db   *DB
	node uuid.UUID
	mu   sync.Mutex
	// tokens are the claims this node holds, by job.
	tokens map[uuid.UUID]uuid.UUID
}

// ExportClaims returns node's claims on the database's export jobs.
func (db *DB) ExportClaims(node uuid.UUID) *ExportClaims {
	return &ExportClaims{db: db, node: node, tokens: map[uuid.UUID]uuid.UUID{}}
}

// NextExport claims for this node, until now + lease, the next job waiting
// in processing in the cluster's fair order: the customers whose jobs
// have all ended are forgotten; a customer seen waiting for the first
// time joins with the current turn, so it goes after those still waiting
// for their turn in this round; the oldest waiting job of the customer
// with the lowest turn goes (ties go to the oldest job), and its customer
// takes the next turn. ok is false when no job waits.
func (c *ExportClaims) NextExport(lease time.Duration) (job store.ExportJob, ok bool, err error) {
	token := uuid.New()
	err = c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		ok = false
		now := c.db.Now().UTC()
		// Every writer of every node looks once a second: while no job
		// waits, a look is this one read, without the lock.
		var waiting bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM exports e WHERE `+exportWaiting+`)`, now).Scan(&waiting); err != nil || !waiting {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, exportQueueLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM export_turns t WHERE NOT EXISTS
	(SELECT 1 FROM exports e WHERE e.customer_id = t.customer_id AND e.state IN `+activeStates+`)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO export_turns (customer_id, turn)
SELECT DISTINCT e.customer_id, (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM export_turn)
FROM exports e WHERE `+exportWaiting+`
ON CONFLICT (customer_id) DO NOTHING`, now); err != nil {
			return err
		}
		var id, customer uuid.UUID
		err := tx.QueryRow(ctx, `SELECT e.id, e.customer_id FROM exports e JOIN export_turns t ON t.customer_id = e.customer_id
WHERE `+exportWaiting+` ORDER BY t.turn, e.created_at, e.id LIMIT 1`, now).Scan(&id, &customer)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE export_turns SET turn = nextval('export_turn') WHERE customer_id = $1`, customer); err != nil {
			return err
		}
		if job, err = c.take(ctx, tx, id, now.Add(lease), token); err != nil {
			return err
		}
		ok = true
		return nil
	})
	if err != nil || !ok {
		return store.ExportJob{}, false, err
	}
	c.hold(job.ID, token)
	return job, true, nil
}

// AbandonedExport claims for this node, until now + lease, the oldest job
// left in writing whose claim ran out (its node died writing, or lost the
// database for longer than the lease), or that no node claimed (written
// before the cluster's claims). The node then deals with what the writer
// left (jobs.Exporter: removes the file, puts the job back in the queue or
// fails it). ok is false when there is none.
func (c *ExportClaims) AbandonedExport(lease time.Duration) (job store.ExportJob, ok bool, err error) {
	token := uuid.New()
	err = c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		ok = false
		now := c.db.Now().UTC()
		var id uuid.UUID
		err := tx.QueryRow(ctx, `SELECT e.id FROM exports e
WHERE e.state = 'writing' AND coalesce(e.claimed_until <= $1, true)
ORDER BY e.created_at, e.id LIMIT 1 FOR UPDATE SKIP LOCKED`, now).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if job, err = c.take(ctx, tx, id, now.Add(lease), token); err != nil {
			return err
		}
		ok = true
		return nil
	})
	if err != nil || !ok {
		return store.ExportJob{}, false, err
	}
	c.hold(job.ID, token)
	return job, true, nil
}

// take claims job id for this node until until under token, and returns it.
func (c *ExportClaims) take(ctx context.Context, tx pgx.Tx, id uuid.UUID, until time.Time, token uuid.UUID) (store.ExportJob, error) {
	job, err := getExport(ctx, tx, id, true)
	if err != nil {
		return job, err
	}
	_, err = tx.Exec(ctx, `UPDATE exports SET claimed_by = $2, claimed_until = $3, claim_token = $4 WHERE id = $1`,
		id, c.node, until, token)
	return job, err
}

func (c *ExportClaims) hold(id, token uuid.UUID) {
	c.mu.Lock()
	c.tokens[id] = token
	c.mu.Unlock()
}

func (c *ExportClaims) token(id uuid.UUID) (uuid.UUID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tokens[id]
	return t, ok
}

func (c *ExportClaims) drop(id uuid.UUID) {
	c.mu.Lock()
	delete(c.tokens, id)
	c.mu.Unlock()
}

// RenewExport extends this node's claim on job id to now + lease. held is
// false when the node no longer holds the claim (another node took the
// job over, or the job ended); the node must then leave the job and its
// file alone.
func (c *ExportClaims) RenewExport(id uuid.UUID, lease time.Duration) (held bool, err error) {
	token, ok := c.token(id)
	if !ok {
		return false, nil
	}
	err = c.db.tx(func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE exports SET claimed_until = $3
WHERE id = $1 AND claim_token = $2 AND state IN `+activeStates, id, token, c.db.Now().UTC().Add(lease))
		held = tag.RowsAffected() == 1
		return err
	})
	if err == nil && !held {
		c.drop(id)
	}
	return held, err
}

// DropExportClaim forgets this node's claim on job id: the node is done
// with the job. A claim still recorded in the database (the job was left
// writing, its last change failed) runs out with its lease, and the job is
// then taken over.
func (c *ExportClaims) DropExportClaim(id uuid.UUID) { c.drop(id) }

// change makes change to job id if this node holds its claim (otherwise an
// ErrConflict, errClaimLost, and nothing changes); release ends the claim
// in the same transaction.
func (c *ExportClaims) change(id uuid.UUID, release bool, change exportChange) (store.ExportJob, error) {
	token, ok := c.token(id)
	if !ok {
		return store.ExportJob{}, errClaimLost
	}
	j, err := c.db.changeExport(id, func(ctx context.Context, tx pgx.Tx, _ *store.ExportJob) error {
		var held *uuid.UUID
		if err := tx.QueryRow(ctx, `SELECT claim_token FROM exports WHERE id = $1`, id).Scan(&held); err != nil {
			return err
		}
		if held == nil || *held != token {
			return errClaimLost
		}
		return nil
	}, func(ctx context.Context, tx pgx.Tx, j *store.ExportJob, now time.Time) error {
		if err := change(ctx, tx, j, now); err != nil {
			return err
		}
		if !release {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE exports SET claimed_by = NULL, claimed_until = NULL, claim_token = NULL WHERE id = $1`, id)
		return err
	})
	if release && err == nil || errors.Is(err, errClaimLost) || errors.Is(err, store.ErrNotFound) {
		c.drop(id)
	}
	return j, err
}

// BeginExportWrite is the store's BeginExportWrite of a job this node
// claimed; the claim goes on.
func (c *ExportClaims) BeginExportWrite(id uuid.UUID, key string) (store.ExportJob, error) {
	return c.change(id, false, beginWrite(key))
}

// ResumeExport is the store's ResumeExport of a job this node claimed:
// the job goes back to the queue, unclaimed.
func (c *ExportClaims) ResumeExport(id uuid.UUID) (store.ExportJob, error) {
	return c.change(id, true, resume)
}

// FailExport is the store's FailExport of a job this node claimed.
func (c *ExportClaims) FailExport(id uuid.UUID, reason, detail string) (store.ExportJob, error) {
	return c.change(id, true, failJob(reason, detail))
}

// RetryExport is the store's RetryExport of a job this node claimed: the
// job goes back to the queue, unclaimed, until retryAt.
func (c *ExportClaims) RetryExport(id uuid.UUID, retryAt time.Time, detail string) (store.ExportJob, error) {
	return c.change(id, true, retryJob(retryAt, detail))
}

// CompleteExport is the store's CompleteExport of a job this node claimed:
// the job completes and its events are marked exported in one
// transaction, only while the claim is this node's, so that of two nodes
// that wrote the job (one that lost its claim unaware) one completes it.
func (c *ExportClaims) CompleteExport(id uuid.UUID, r store.ExportResult) (store.ExportJob, error) {
	return c.change(id, true, complete(r))
}
