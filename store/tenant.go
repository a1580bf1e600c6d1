package store

import (
	"crypto/sha256"
	"time"

	"github.com/google/uuid"
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

// Signing algorithms: the JOSE "alg" names of the tokens hookd signs.
const (
	// AlgRS256 is RSASSA-PKCS1-v1_5 with SHA-256 over RSA-2048, the
	// Webhooks v3 default.
	AlgRS256 = "RS256"
	// AlgES256 is ECDSA over P-256 with SHA-256.
	AlgES256 = "ES256"
	// AlgEdDSA is Ed25519.
	AlgEdDSA = "EdDSA"
)

// SigningAlgs lists the signing algorithms, the default (RS256) first; a
// key set holds a triple of keys for each, in this order.
var SigningAlgs = []string{AlgRS256, AlgES256, AlgEdDSA}

// StoredKey is one signing key as stored: its algorithm, id and PKCS #8 DER.
type StoredKey struct {
	// Alg is the algorithm the key signs with; empty is RS256 (keys
	// stored before hookd had other algorithms).
	Alg string `json:"alg,omitempty"`
	ID  string `json:"kid"`
	DER []byte `json:"der"`
}

// Algorithm returns the key's algorithm, RS256 when Alg is empty.
func (k StoredKey) Algorithm() string {
	if k.Alg == "" {
		return AlgRS256
	}
	return k.Alg
}

// KeyTriple is the keys of one algorithm: Current signs, Previous and
// Next are published.
type KeyTriple struct {
	Previous StoredKey `json:"previous"`
	Current  StoredKey `json:"current"`
	Next     StoredKey `json:"next"`
}

// Alg returns the triple's algorithm (that of its current key).
func (t KeyTriple) Alg() string { return t.Current.Algorithm() }

// KeySet is a customer's signing keys: one triple per algorithm. In a
// backend with tables it is one row per key: customer, algorithm, role
// (previous, current, next), kid, DER.
type KeySet struct {
	// KeyTriple is the RS256 triple. Its members are the record's own,
	// as in files written before the other algorithms.
	KeyTriple
	// Others are the triples of the other algorithms, in SigningAlgs
	// order. A customer created before them has none until
	// AddKeyTriples adds them.
	Others    []KeyTriple `json:"others,omitempty"`
	RotatedAt time.Time   `json:"rotatedAt"`
}

// Triples returns every triple, RS256 first.
func (k KeySet) Triples() []KeyTriple {
	return append([]KeyTriple{k.KeyTriple}, k.Others...)
}

// Triple returns the triple of alg; ok is false when the set has none.
func (k KeySet) Triple(alg string) (t KeyTriple, ok bool) {
	for _, t := range k.Triples() {
		if t.Alg() == alg {
			return t, true
		}
	}
	return KeyTriple{}, false
}

// Missing returns the algorithms of SigningAlgs the set has no triple for.
func (k KeySet) Missing() []string {
	var out []string
	for _, alg := range SigningAlgs {
		if _, ok := k.Triple(alg); !ok {
			out = append(out, alg)
		}
	}
	return out
}

// Keys returns every key: for each triple, previous, current and next.
func (k KeySet) Keys() []StoredKey {
	var out []StoredKey
	for _, t := range k.Triples() {
		out = append(out, t.Previous, t.Current, t.Next)
	}
	return out
}

// HashSecret hashes a client secret or token for storage. Secrets and tokens
// are 256-bit random values, so a plain SHA-256 is sufficient.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// ExpiredTokenGrace is how long a token is kept after it expired, so that
// using it is answered as expired (403) rather than unknown (401).
const ExpiredTokenGrace = 24 * time.Hour
