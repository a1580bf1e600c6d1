package store

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// Customer is a tenant. Customers are created with their first client.
type Customer struct {
	ID        uuid.UUID `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
}

// Client is a confidential client of a customer. Only a hash of its secret is kept.
type Client struct {
	ID         uuid.UUID `json:"id"`
	CustomerID uuid.UUID `json:"customerId"`
	SecretHash []byte    `json:"secretHash"`
	CreatedAt  time.Time `json:"createdAt"`
}

// Token is an issued access token. Only a hash of the token is kept.
type Token struct {
	CustomerID uuid.UUID `json:"customerId"`
	ClientID   uuid.UUID `json:"clientId"`
	Scope      string    `json:"scope"`
	ExpiresAt  time.Time `json:"expiresAt"`
	Revoked    bool      `json:"revoked,omitempty"`
}

// StoredKey is one signing key as stored: its id and PKCS#8 DER.
type StoredKey struct {
	ID  string `json:"kid"`
	DER []byte `json:"der"`
}

// KeySet is a customer's signing keys: Current signs, Previous and Next are published.
type KeySet struct {
	Previous  StoredKey `json:"previous"`
	Current   StoredKey `json:"current"`
	Next      StoredKey `json:"next"`
	RotatedAt time.Time `json:"rotatedAt"`
}

// Keys returns the three keys, previous first.
func (k KeySet) Keys() []StoredKey { return []StoredKey{k.Previous, k.Current, k.Next} }

// HashSecret hashes a client secret or token for storage. Secrets and tokens
// are 256-bit random values, so a plain SHA-256 is sufficient.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CreateClient stores a new client for customer, creating the customer and
// its key set (newKeys is called only then) on first use.
func (db *DB) CreateClient(customerID, clientID uuid.UUID, secretHash []byte, newKeys func() (KeySet, error)) (Client, error) {
	c := Client{ID: clientID, CustomerID: customerID, SecretHash: secretHash, CreatedAt: db.now().UTC()}
	// Keys are generated outside the write transaction: RSA generation is slow.
	var keys *KeySet
	exists := false
	_ = db.bolt.View(func(tx *bbolt.Tx) error {
		exists = tx.Bucket(bucketKeys).Get(customerID[:]) != nil
		return nil
	})
	if !exists {
		ks, err := newKeys()
		if err != nil {
			return Client{}, err
		}
		ks.RotatedAt = c.CreatedAt
		keys = &ks
	}
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		customers := tx.Bucket(bucketCustomers)
		if customers.Get(customerID[:]) == nil {
			if err := putJSON(customers, customerID[:], Customer{ID: customerID, CreatedAt: c.CreatedAt}); err != nil {
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
func (db *DB) Clients(customerID uuid.UUID) ([]Client, error) {
	out := []Client{}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		clients := tx.Bucket(bucketClients)
		c := tx.Bucket(bucketClientsByCustomer).Cursor()
		for k, _ := c.Seek(customerID[:]); k != nil && bytes.HasPrefix(k, customerID[:]); k, _ = c.Next() {
			var cl Client
			if err := getJSON(clients, k[16:], &cl); err != nil {
				return err
			}
			out = append(out, cl)
		}
		return nil
	})
	// The index is ordered by client id; a customer has few clients.
	slices.SortStableFunc(out, func(a, b Client) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

// RevokeClient deletes a client and revokes every token it was issued.
func (db *DB) RevokeClient(customerID, clientID uuid.UUID) error {
	return db.bolt.Update(func(tx *bbolt.Tx) error {
		var cl Client
		if err := getJSON(tx.Bucket(bucketClients), clientID[:], &cl); err != nil {
			return err
		}
		if cl.CustomerID != customerID {
			return ErrNotFound
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
			var t Token
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
			var t Token
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
func (db *DB) Authenticate(customerID, clientID uuid.UUID, secret string) (Client, error) {
	var cl Client
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bucketClients), clientID[:], &cl)
	})
	if err != nil {
		return Client{}, err
	}
	if cl.CustomerID != customerID || subtle.ConstantTimeCompare(cl.SecretHash, HashSecret(secret)) != 1 {
		return Client{}, ErrNotFound
	}
	return cl, nil
}

// PutToken stores an issued token under its hash.
func (db *DB) PutToken(hash []byte, t Token) error {
	return db.group.do(func(tx *bbolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketTokens), hash, t); err != nil {
			return err
		}
		return tx.Bucket(bucketTokenExpiry).Put(join(timeKey(t.ExpiresAt), hash), nil)
	})
}

// LookupToken returns the token stored under hash, expired or not; ErrNotFound when unknown.
func (db *DB) LookupToken(hash []byte) (Token, error) {
	var t Token
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bucketTokens), hash, &t)
	})
	return t, err
}

// ExpiredTokenGrace is how long a token is kept after it expired, so that
// using it is answered as expired (403) rather than unknown (401).
const ExpiredTokenGrace = 24 * time.Hour

// DeleteExpiredTokens removes up to limit tokens that expired more than
// ExpiredTokenGrace before now and returns how many it removed.
func (db *DB) DeleteExpiredTokens(now time.Time, limit int) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		n = 0
		expiry, tokens := tx.Bucket(bucketTokenExpiry), tx.Bucket(bucketTokens)
		cutoff := timeKey(now.Add(-ExpiredTokenGrace))
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

// CustomerExists reports whether a customer has been created.
func (db *DB) CustomerExists(customerID uuid.UUID) bool {
	found := false
	_ = db.bolt.View(func(tx *bbolt.Tx) error {
		found = tx.Bucket(bucketCustomers).Get(customerID[:]) != nil
		return nil
	})
	return found
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
func (db *DB) KeySet(customerID uuid.UUID) (KeySet, error) {
	var ks KeySet
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bucketKeys), customerID[:], &ks)
	})
	return ks, err
}

// RotateKeys promotes Next to Current, Current to Previous, retires the old
// Previous and stores next as the new Next.
func (db *DB) RotateKeys(customerID uuid.UUID, next StoredKey) (KeySet, error) {
	var ks KeySet
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		if err := getJSON(b, customerID[:], &ks); err != nil {
			return err
		}
		ks = KeySet{Previous: ks.Current, Current: ks.Next, Next: next, RotatedAt: db.now().UTC()}
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
		return ErrNotFound
	}
	return json.Unmarshal(data, v)
}
