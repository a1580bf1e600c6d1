package delivery

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"hookd/store"
)

// A customer's key set as the store keeps it: for each algorithm of
// store.SigningAlgs, the previous, current and next signing keys, each as
// its algorithm, key id and PKCS #8 DER. The API creates a set with a
// customer's first client and a new next key of every algorithm at each
// rotation; a customer created before ES256 and EdDSA gets their triples
// on first use (MissingKeyTriples).

// GenerateStoredKey generates a signing key of alg (RS256: RSA-2048,
// ES256: P-256, EdDSA: Ed25519) in its stored form.
func GenerateStoredKey(alg string) (store.StoredKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case store.AlgRS256:
		var k SigningKey
		if k, err = NewSigningKey(); err == nil {
			priv = k.Private
		}
	case store.AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case store.AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return store.StoredKey{}, fmt.Errorf("generate signing key: unknown algorithm %q", alg)
	}
	if err != nil {
		return store.StoredKey{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	id, err := publicThumbprint(priv.Public())
	if err != nil {
		return store.StoredKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.StoredKey{}, fmt.Errorf("marshal %s key: %w", alg, err)
	}
	return store.StoredKey{Alg: alg, ID: id, DER: der}, nil
}

// NewKeyTriple generates the previous, current and next keys of alg.
func NewKeyTriple(alg string) (store.KeyTriple, error) {
	var t store.KeyTriple
	for _, k := range []*store.StoredKey{&t.Previous, &t.Current, &t.Next} {
		var err error
		if *k, err = GenerateStoredKey(alg); err != nil {
			return store.KeyTriple{}, err
		}
	}
	return t, nil
}

// NewKeySet generates the key set of a new customer: a triple for every
// algorithm.
func NewKeySet() (store.KeySet, error) {
	var ks store.KeySet
	var err error
	if ks.KeyTriple, err = NewKeyTriple(store.AlgRS256); err != nil {
		return store.KeySet{}, err
	}
	if ks.Others, err = MissingKeyTriples(ks); err != nil {
		return store.KeySet{}, err
	}
	return ks, nil
}

// MissingKeyTriples generates the triples of the algorithms ks has none
// for, to be stored with store.DB.AddKeyTriples.
func MissingKeyTriples(ks store.KeySet) ([]store.KeyTriple, error) {
	var out []store.KeyTriple
	for _, alg := range ks.Missing() {
		t, err := NewKeyTriple(alg)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// NewStoredKeys generates a new next key for each triple of ks, for a
// rotation (store.DB.RotateKeys).
func NewStoredKeys(ks store.KeySet) ([]store.StoredKey, error) {
	var out []store.StoredKey
	for _, t := range ks.Triples() {
		k, err := GenerateStoredKey(t.Alg())
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// parseAnyKey decodes a stored key's PKCS #8 DER, checks that it is a key
// of its algorithm and returns it with its thumbprint.
func parseAnyKey(k store.StoredKey) (crypto.Signer, string, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(k.DER)
	if err != nil {
		return nil, "", fmt.Errorf("parse signing key: %w", err)
	}
	var priv crypto.Signer
	switch p := parsed.(type) {
	case *rsa.PrivateKey:
		if k.Algorithm() == store.AlgRS256 && p.N.BitLen() >= KeyBits {
			priv = p
		}
	case *ecdsa.PrivateKey:
		if k.Algorithm() == store.AlgES256 && p.Curve == elliptic.P256() {
			priv = p
		}
	case ed25519.PrivateKey:
		if k.Algorithm() == store.AlgEdDSA {
			priv = p
		}
	}
	if priv == nil {
		return nil, "", fmt.Errorf("parse signing key: a %T is not a %s key", parsed, k.Algorithm())
	}
	id, err := publicThumbprint(priv.Public())
	if err != nil {
		return nil, "", err
	}
	return priv, id, nil
}

// KeySetJWKS returns the JWKS document of a key set's public keys: for
// each algorithm, RS256 first, the previous, current and next key, each
// with its "alg", "kid" and "use":"sig" (EC keys with "crv":"P-256", OKP
// keys with "crv":"Ed25519").
func KeySetJWKS(ks store.KeySet) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range ks.Keys() {
		priv, id, err := parseAnyKey(k)
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: priv.Public(), KeyID: id, Algorithm: k.Algorithm(), Use: "sig"})
	}
	out, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("marshal jwks: %w", err)
	}
	return out, nil
}
