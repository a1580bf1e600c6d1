package bolt

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"hookd/store"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// CreateClient stores a new client for customer, creating the customer and
// its key set (newKeys is called only then) on first use.
func (db *DB) CreateClient(customerID, clientID uuid.UUID, secretHash []byte, newKeys func() (store.KeySet, error)) (store.Client, error) {
	c := store.Client{ID: clientID, CustomerID: customerID, SecretHash: secretHash, CreatedAt: db.now().UTC()}
	// Keys are generated outside the write transaction: RSA generation is slow.
	var keys *store.KeySet
	exists := false
	_ = db.bolt.View(func(tx *bbolt.Tx) error {
		exists = tx.Bucket(bucketKeys).Get(customerID[:]) != nil
		return nil
	})
	if !exists {
		ks, err := newKeys()
		if err != nil {
			return store.Client{}, err
		}
		ks.RotatedAt = c.CreatedAt
		keys = &ks
	}
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		customers := tx.Bucket(bucketCustomers)
		if customers.Get(customerID[:]) == nil {
			if err := putJSON(customers, customerID[:], store.Customer{ID: customerID, CreatedAt: c.CreatedAt}); err != nil {
				return err
			}
		}
		if keys != nil && tx.Bucket(bucketKeys).Get(customerID[:]) == nil {
			if err := putJSON(tx.Bucket(bucketKeys), customerID[:], keys); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketClients).Get(clientID[:]) != nil {
			return conflict("client %s already exists", clientID)
		}
		if err := putJSON(tx.Bucket(bucketClients), clientID[:], c); err != nil {
			return err
		}
		return tx.Bucket(bucketClientsByCustomer).Put(join(customerID[:], clientID[:]), nil)
	})
	return c, err
}

// Clients lists a customer's clients, oldest first.
func (db *DB) Clients(customerID uuid.UUID) ([]store.Client, error) {
	out := []store.Client{}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		clients := tx.Bucket(bucketClients)
		c := tx.Bucket(bucketClientsByCustomer).Cursor()
		for k, _ := c.Seek(customerID[:]); k != nil && bytes.HasPrefix(k, customerID[:]); k, _ = c.Next() {
			var cl store.Client
			if err := getJSON(clients, k[16:], &cl); err != nil {
				return err
			}
			out = append(out, cl)
		}
		return nil
	})
	// The index is ordered by client id; a customer has few clients.
	slices.SortStableFunc(out, func(a, b store.Client) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

// RevokeClient deletes a client and revokes every token it was issued.
func (db *DB) RevokeClient(customerID, clientID uuid.UUID) error {
	return db.bolt.Update(func(tx *bbolt.Tx) error {
		var cl store.Client
		if err := getJSON(tx.Bucket(bucketClients), clientID[:], &cl); err != nil {
			return err
		}
		if cl.CustomerID != customerID {
			return store.ErrNotFound
		}
		if err := tx.Bucket(bucketClients).Delete(clientID[:]); err != nil {
			return err
		}
		if err := tx.Bucket(bucketClientsByCustomer).Delete(join(customerID[:], clientID[:])); err != nil {
			return err
		}
		// Tokens are few per client and live an hour: a scan of the expiry index is bounded.
		tokens, expiry := tx.Bucket(bucketTokens), tx.Bucket(bucketTokenExpiry)
		var dead [][]byte
		c := expiry.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			var t store.Token
			if err := getJSON(tokens, k[8:], &t); err != nil {
				continue
			}
			if t.ClientID == clientID {
				dead = append(dead, bytes.Clone(k))
			}
		}
		// Revoked tokens are kept, marked, until they expire, so that using
		// one is told apart from using a token that never existed.
		for _, k := range dead {
			var t store.Token
			if err := getJSON(tokens, k[8:], &t); err != nil {
				return err
			}
			t.Revoked = true
			if err := putJSON(tokens, k[8:], t); err != nil {
				return err
			}
		}
		return nil
	})
}

// Authenticate checks a client's credentials and returns the client.
// Unknown clients, wrong secrets and clients of another customer are ErrNotFound.
func (db *DB) Authenticate(customerID, clientID uuid.UUID, secret string) (store.Client, error) {
	var cl store.Client
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bucketClients), clientID[:], &cl)
	})
	if err != nil {
		return store.Client{}, err
	}
	if cl.CustomerID != customerID || subtle.ConstantTimeCompare(cl.SecretHash, store.HashSecret(secret)) != 1 {
		return store.Client{}, store.ErrNotFound
	}
	return cl, nil
}

// PutToken stores an issued token under its hash.
func (db *DB) PutToken(hash []byte, t store.Token) error {
	return db.group.do(func(tx *bbolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketTokens), hash, t); err != nil {
			return err
		}
		return tx.Bucket(bucketTokenExpiry).Put(join(timeKey(t.ExpiresAt), hash), nil)
	})
}

// LookupToken returns the token stored under hash, expired or not; ErrNotFound when unknown.
func (db *DB) LookupToken(hash []byte) (store.Token, error) {
	var t store.Token
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bucketTokens), hash, &t)
	})
	return t, err
}

// DeleteExpiredTokens removes up to limit tokens that expired more than
// ExpiredTokenGrace before now and returns how many it removed.
func (db *DB) DeleteExpiredTokens(now time.Time, limit int) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		n = 0
		expiry, tokens := tx.Bucket(bucketTokenExpiry), tx.Bucket(bucketTokens)
		cutoff := timeKey(now.Add(-store.ExpiredTokenGrace))
		var dead [][]byte
		c := expiry.Cursor()
		for k, _ := c.First(); k != nil && len(dead) < limit && bytes.Compare(k[:8], cutoff) < 0; k, _ = c.Next() {
			dead = append(dead, bytes.Clone(k))
		}
		for _, k := range dead {
			if err := tokens.Delete(k[8:]); err != nil {
				return err
			}
			if err := expiry.Delete(k); err != nil {
				return err
			}
		}
		n = len(dead)
		return nil
	})
	return n, err
}

// CustomerExists reports whether a customer has been created. Every
// intake request asks, so a customer once found is remembered (customers
// are never deleted): the intake then begins no read transaction of its
// own. Each read transaction takes bbolt's meta lock twice, and so does
// each commit; with thousands of intake requests queued that lock's
// hand-offs delayed every commit and the intake fell further behind
// (bench/RESULTS.md, "EdDSA at 2,000 events/s"). Unknown ids are not
// remembered, so a client cannot grow the set.
func (db *DB) CustomerExists(customerID uuid.UUID) (bool, error) {
	if _, ok := db.customers.Load(customerID); ok {
		return true, nil
	}
	found := false
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		found = tx.Bucket(bucketCustomers).Get(customerID[:]) != nil
		return nil
	})
	if found {
		db.customers.Store(customerID, struct{}{})
	}
	return found, err
}

// Customers lists every customer id.
func (db *DB) Customers() ([]uuid.UUID, error) {
	var out []uuid.UUID
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCustomers).ForEach(func(k, _ []byte) error {
			out = append(out, uuid.UUID(k))
			return nil
		})
	})
	return out, err
}

// KeySet returns a customer's signing keys.
func (db *DB) KeySet(customerID uuid.UUID) (store.KeySet, error) {
	var ks store.KeySet
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bucketKeys), customerID[:], &ks)
	})
	return ks, err
}

// RotateKeys rotates every triple of a customer's key set: Next becomes
// Current, Current becomes Previous, the old Previous is retired and the
// key of next with the triple's algorithm is the new Next. next must hold
// exactly one key per triple.
func (db *DB) RotateKeys(customerID uuid.UUID, next []store.StoredKey) (store.KeySet, error) {
	var ks store.KeySet
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		if err := getJSON(b, customerID[:], &ks); err != nil {
			return err
		}
		triples := ks.Triples()
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
		ks = store.KeySet{KeyTriple: triples[0], Others: triples[1:], RotatedAt: db.now().UTC()}
		if len(ks.Others) == 0 {
			ks.Others = nil
		}
		return putJSON(b, customerID[:], ks)
	})
	return ks, err
}

// AddKeyTriples adds to a customer's key set the triples of the
// algorithms it has none for and returns the set. Triples of algorithms
// it already has are ignored, so that callers racing to complete a set
// agree on the first one stored. It keeps RotatedAt.
func (db *DB) AddKeyTriples(customerID uuid.UUID, triples []store.KeyTriple) (store.KeySet, error) {
	var ks store.KeySet
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		if err := getJSON(b, customerID[:], &ks); err != nil {
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
		return putJSON(b, customerID[:], ks)
	})
	return ks, err
}

// putJSON stores v as JSON. It does not escape <, > and &, so that raw
// JSON members (a subscription's filter) read back byte for byte as they
// were stored.
func putJSON(b *bbolt.Bucket, key []byte, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode %s: %w", b, err)
	}
	return b.Put(key, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func getJSON(b *bbolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return store.ErrNotFound
	}
	return json.Unmarshal(data, v)
}
