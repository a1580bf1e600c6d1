// Package delivery signs notifications as Security Event Tokens (RFC 8417)
// and delivers them to subscription endpoints.
//
// The primitives here are the customer signing keys and their JWKS
// (keys.go), a customer's stored key set (keyset.go), the token header
// and signature (set.go; the claims are encoded by package secevent), the
// retry schedule (schedule.go), a single delivery attempt with dial-time
// address checks (client.go) and the validation of a subscription
// endpoint (endpoint.go).
// The dispatcher that drives attempts from the store builds on them.
package delivery

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// KeyBits is the size of every signing key hookd generates.
const KeyBits = 2048

// SigningKey is an RSA key that signs tokens, with its key id.
type SigningKey struct {
	// ID is the RFC 7638 JWK thumbprint (SHA-256, base64url without
	// padding) of the public key; it is the "kid" of tokens and the JWKS.
	ID string
	// Private is the RSA private key.
	Private *rsa.PrivateKey
}

// NewSigningKey generates an RSA-2048 signing key.
func NewSigningKey() (SigningKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	id, err := KeyID(&priv.PublicKey)
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{ID: id, Private: priv}, nil
}

// KeyID returns the RFC 7638 JWK thumbprint of pub (SHA-256, base64url
// without padding).
func KeyID(pub *rsa.PublicKey) (string, error) {
	if pub == nil || pub.N == nil {
		return "", errors.New("key id: nil public key")
	}
	return publicThumbprint(pub)
}

// publicThumbprint returns the RFC 7638 thumbprint of a public key of any of
// the algorithms (*rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey).
func publicThumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	return b64.EncodeToString(sum), nil
}

// MarshalKey encodes the private key of k as PKCS#8 DER for storage.
func MarshalKey(k SigningKey) ([]byte, error) {
	if k.Private == nil {
		return nil, errors.New("marshal signing key: nil key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("marshal signing key: %w", err)
	}
	return der, nil
}

// ParseKey decodes a PKCS#8 DER RSA private key written by MarshalKey and
// recomputes its ID.
func ParseKey(der []byte) (SigningKey, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return SigningKey{}, fmt.Errorf("parse signing key: %w", err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return SigningKey{}, fmt.Errorf("parse signing key: %T is not an RSA key", parsed)
	}
	if priv.N.BitLen() < KeyBits {
		return SigningKey{}, fmt.Errorf("parse signing key: %d-bit RSA key is shorter than %d bits", priv.N.BitLen(), KeyBits)
	}
	id, err := KeyID(&priv.PublicKey)
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{ID: id, Private: priv}, nil
}

// JWKS returns the RFC 7517 key set of the given public keys, in order:
// {"keys":[{"use":"sig","kty":"RSA","kid":...,"alg":"RS256","n":...,"e":...}]},
// each kid being the key's thumbprint. No keys give {"keys":[]}.
func JWKS(keys ...*rsa.PublicKey) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, pub := range keys {
		id, err := KeyID(pub)
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key:       pub,
			KeyID:     id,
			Algorithm: string(jose.RS256),
			Use:       "sig",
		})
	}
	out, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("marshal jwks: %w", err)
	}
	return out, nil
}
