package postgres

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// CreateClient stores a new client for customer, creating the customer and
// its key set (newKeys is called only then) on first use.
//
// Unlike the bolt backend, which generates the keys before its write
// transaction so as not to hold up every other write, newKeys runs inside
// the transaction: here it holds up only the first clients of the same
// customer created at once, which wait on the customer's row and then find
// its keys, so that the keys are generated once.
func (db *DB) CreateClient(customerID, clientID uuid.UUID, secretHash []byte, newKeys func() (store.KeySet, error)) (store.Client, error) {
	c := store.Client{ID: clientID, CustomerID: customerID, SecretHash: secretHash, CreatedAt: db.Now().UTC()}
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		// A customer created at once by another call is waited for here.
		if _, err := tx.Exec(ctx, `INSERT INTO customers (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`,
			customerID, c.CreatedAt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM customers WHERE id = $1 FOR UPDATE`, customerID); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM key_sets WHERE customer_id = $1)`, customerID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			ks, err := newKeys()
			if err != nil {
				return err
			}
			ks.RotatedAt = c.CreatedAt
			if _, err := tx.Exec(ctx, `INSERT INTO key_sets (customer_id, rotated_at) VALUES ($1, $2)`, customerID, ks.RotatedAt); err != nil {
				return err
			}
			if err := insertKeys(ctx, tx, customerID, ks); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO clients (id, customer_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)`,
			clientID, customerID, nonNilBytes(secretHash), c.CreatedAt)
		if isUnique(err) {
			return &store.ConflictError{Reason: fmt.Sprintf("client %s already exists", clientID)}
		}
		return err
	})
	if err != nil {
		return store.Client{}, err
	}
	return c, nil
}

// Clients lists a customer's clients, oldest first.
func (db *DB) Clients(customerID uuid.UUID) ([]store.Client, error) {
	out := []store.Client{}
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, customer_id, secret_hash, created_at FROM clients
WHERE customer_id = $1 ORDER BY created_at, id`, customerID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanClient)
		return err
	})
	if err != nil {
		return []store.Client{}, err
	}
	return out, nil
}

func scanClient(row pgx.CollectableRow) (store.Client, error) {
	var c store.Client
	err := row.Scan(&c.ID, &c.CustomerID, &c.SecretHash, &c.CreatedAt)
	c.CreatedAt = c.CreatedAt.UTC()
	return c, err
}

// RevokeClient deletes a client and marks every token it was issued
// revoked. Revoked tokens are kept until they expire, so that using one is
// told apart from using a token that never existed.
func (db *DB) RevokeClient(customerID, clientID uuid.UUID) error {
	return db.tx(func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM clients WHERE id = $1 AND customer_id = $2`, clientID, customerID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		_, err = tx.Exec(ctx, `UPDATE tokens SET revoked = true WHERE client_id = $1`, clientID)
		return err
	})
}

// Authenticate checks a client's credentials and returns the client.
// Unknown clients, wrong secrets and clients of another customer are
// ErrNotFound. The hashes are compared in constant time.
func (db *DB) Authenticate(customerID, clientID uuid.UUID, secret string) (store.Client, error) {
	var cl store.Client
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, customer_id, secret_hash, created_at FROM clients WHERE id = $1`, clientID)
		if err != nil {
			return err
		}
		cl, err = pgx.CollectExactlyOneRow(rows, scanClient)
		return err
	})
	if err != nil {
		return store.Client{}, err
	}
	if cl.CustomerID != customerID || subtle.ConstantTimeCompare(cl.SecretHash, store.HashSecret(secret)) != 1 {
		return store.Client{}, store.ErrNotFound
	}
	return cl, nil
}

// PutToken stores an issued token under its hash, replacing one stored
// under the same hash.
func (db *DB) PutToken(hash []byte, t store.Token) error {
	return db.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
INSERT INTO tokens (hash, customer_id, client_id, scope, expires_at, revoked) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (hash) DO UPDATE SET customer_id = $2, client_id = $3, scope = $4, expires_at = $5, revoked = $6`,
			nonNilBytes(hash), t.CustomerID, t.ClientID, t.Scope, t.ExpiresAt, t.Revoked)
		return err
	})
}

// LookupToken returns the token stored under hash, expired or not;
// ErrNotFound when unknown.
func (db *DB) LookupToken(hash []byte) (store.Token, error) {
	var t store.Token
	err := db.readRow(`SELECT customer_id, client_id, scope, expires_at, revoked FROM tokens WHERE hash = $1`,
		[]any{nonNilBytes(hash)}, &t.CustomerID, &t.ClientID, &t.Scope, &t.ExpiresAt, &t.Revoked)
	if err != nil {
		return store.Token{}, err
	}
	t.ExpiresAt = t.ExpiresAt.UTC()
	return t, nil
}

// DeleteExpiredTokens removes up to limit tokens that expired more than
// store.ExpiredTokenGrace before now, earliest expiry first, and returns
// how many it removed.
func (db *DB) DeleteExpiredTokens(now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil // PostgreSQL refuses a negative LIMIT; bolt removes nothing
	}
	n := 0
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
DELETE FROM tokens WHERE hash IN (
	SELECT hash FROM tokens WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)`,
			now.Add(-store.ExpiredTokenGrace), limit)
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// CustomerExists reports whether a customer has been created.
func (db *DB) CustomerExists(customerID uuid.UUID) (bool, error) {
	found := false
	err := db.readRow(`SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)`, []any{customerID}, &found)
	return found, err
}

// Customers lists every customer id, in id order as the bolt backend does.
func (db *DB) Customers() ([]uuid.UUID, error) {
	var out []uuid.UUID
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM customers ORDER BY id`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if len(out) == 0 {
			out = nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// KeySet returns a customer's signing keys; ErrNotFound when it has none.
func (db *DB) KeySet(customerID uuid.UUID) (store.KeySet, error) {
	var ks store.KeySet
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		ks, err = readKeys(ctx, tx, customerID, false)
		return err
	})
	if err != nil {
		return store.KeySet{}, err
	}
	return ks, nil
}

// RotateKeys rotates every triple of a customer's key set: Next becomes
// Current, Current becomes Previous, the old Previous is retired and the
// key of next with the triple's algorithm is the new Next. next must hold
// exactly one key per triple.
func (db *DB) RotateKeys(customerID uuid.UUID, next []store.StoredKey) (store.KeySet, error) {
	var ks store.KeySet
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		old, err := readKeys(ctx, tx, customerID, true)
		if err != nil {
			return err
		}
		triples := old.Triples()
		if len(next) != len(triples) {
			return fmt.Errorf("rotate keys: got %d new keys for %d algorithms", len(next), len(triples))
		}
		for i, t := range triples {
			j := slices.IndexFunc(next, func(k store.StoredKey) bool { return k.Algorithm() == t.Alg() })
			if j < 0 {
				return fmt.Errorf("rotate keys: no new %s key", t.Alg())
			}
			triples[i] = store.KeyTriple{Previous: t.Current, Current: t.Next, Next: next[j]}
		}
		ks = store.KeySet{KeyTriple: triples[0], Others: triples[1:], RotatedAt: db.Now().UTC()}
		if len(ks.Others) == 0 {
			ks.Others = nil
		}
		return writeKeys(ctx, tx, customerID, ks)
	})
	if err != nil {
		return store.KeySet{}, err
	}
	return ks, nil
}

// AddKeyTriples adds to a customer's key set the triples of the
// algorithms it has none for and returns the set. Triples of algorithms
// it already has are ignored, so that callers racing to complete a set
// agree on the first one stored. It keeps RotatedAt.
func (db *DB) AddKeyTriples(customerID uuid.UUID, triples []store.KeyTriple) (store.KeySet, error) {
	var ks store.KeySet
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		ks, err = readKeys(ctx, tx, customerID, true)
		if err != nil {
			return err
		}
		added := false
		for _, t := range triples {
			if _, ok := ks.Triple(t.Alg()); ok {
				continue
			}
			ks.Others = append(ks.Others, t)
			added = true
		}
		if !added {
			return nil
		}
		// SigningAlgs order, whatever the order they were added in.
		slices.SortStableFunc(ks.Others, func(a, b store.KeyTriple) int {
			return slices.Index(store.SigningAlgs, a.Alg()) - slices.Index(store.SigningAlgs, b.Alg())
		})
		return writeKeys(ctx, tx, customerID, ks)
	})
	if err != nil {
		return store.KeySet{}, err
	}
	return ks, nil
}

// maxKeyTriples bounds the triples readKeys builds a set of: a stored
// position beyond it is damage, not a key.
const maxKeyTriples = 64

// Key roles in signing_keys.role.
const (
	rolePrevious = iota
	roleCurrent
	roleNext
)

// readKeys reads a customer's key set, locking it when forUpdate;
// ErrNotFound when the customer has none.
func readKeys(ctx context.Context, tx pgx.Tx, customerID uuid.UUID, forUpdate bool) (store.KeySet, error) {
	var ks store.KeySet
	sql := `SELECT rotated_at FROM key_sets WHERE customer_id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	if err := tx.QueryRow(ctx, sql, customerID).Scan(&ks.RotatedAt); err != nil {
		return store.KeySet{}, err
	}
	ks.RotatedAt = ks.RotatedAt.UTC()
	rows, err := tx.Query(ctx, `SELECT position, role, alg, kid, der FROM signing_keys
WHERE customer_id = $1 ORDER BY position, role`, customerID)
	if err != nil {
		return store.KeySet{}, err
	}
	var triples []store.KeyTriple
	var position, role int16
	var k store.StoredKey
	_, err = pgx.ForEachRow(rows, []any{&position, &role, &k.Alg, &k.ID, &k.DER}, func() error {
		if position < 0 || position >= maxKeyTriples {
			return fmt.Errorf("key set of %s: key position %d", customerID, position)
		}
		for len(triples) <= int(position) {
			triples = append(triples, store.KeyTriple{})
		}
		t := &triples[position]
		switch role {
		case rolePrevious:
			t.Previous = k
		case roleCurrent:
			t.Current = k
		case roleNext:
			t.Next = k
		default:
			return fmt.Errorf("key set of %s: key role %d", customerID, role)
		}
		k = store.StoredKey{}
		return nil
	})
	if err != nil {
		return store.KeySet{}, err
	}
	if len(triples) == 0 {
		return store.KeySet{}, fmt.Errorf("key set of %s has no keys", customerID)
	}
	ks.KeyTriple, ks.Others = triples[0], triples[1:]
	if len(ks.Others) == 0 {
		ks.Others = nil
	}
	return ks, nil
}

// writeKeys replaces a customer's stored key set, whose row readKeys
// locked, with ks.
func writeKeys(ctx context.Context, tx pgx.Tx, customerID uuid.UUID, ks store.KeySet) error {
	if _, err := tx.Exec(ctx, `UPDATE key_sets SET rotated_at = $2 WHERE customer_id = $1`, customerID, ks.RotatedAt); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM signing_keys WHERE customer_id = $1`, customerID); err != nil {
		return err
	}
	return insertKeys(ctx, tx, customerID, ks)
}

// insertKeys inserts ks's keys, one row each, in one statement.
func insertKeys(ctx context.Context, tx pgx.Tx, customerID uuid.UUID, ks store.KeySet) error {
	var (
		positions, roles []int16
		algs, kids       []string
		ders             [][]byte
	)
	for i, t := range ks.Triples() {
		for role, k := range []store.StoredKey{rolePrevious: t.Previous, roleCurrent: t.Current, roleNext: t.Next} {
			positions, roles = append(positions, int16(i)), append(roles, int16(role))
			algs, kids, ders = append(algs, k.Alg), append(kids, k.ID), append(ders, nonNilBytes(k.DER))
		}
	}
	_, err := tx.Exec(ctx, `
INSERT INTO signing_keys (customer_id, position, role, alg, kid, der)
SELECT $1, * FROM unnest($2::smallint[], $3::smallint[], $4::text[], $5::text[], $6::bytea[])`,
		customerID, positions, roles, algs, kids, ders)
	return err
}

// nonNilBytes is b for a NOT NULL bytea column: pgx sends a nil slice as NULL.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
