package delivery

import (
	"crypto/rsa"

	"hookd/store"
)

// A customer's key set as the store keeps it: the previous, current and
// next signing keys, each as its key id and PKCS #1 DER. The API creates a
// set with a customer's first client and a new next key at each rotation.

// NewStoredKey generates a signing key in its stored form.
func NewStoredKey() (store.StoredKey, error) {
	k, err := NewSigningKey()
	if err != nil {
		return store.StoredKey{}, err
	}
	der, err := MarshalKey(k)
	if err != nil {
		return store.StoredKey{}, err
	}
	return store.StoredKey{ID: k.ID, DER: der}, nil
}

// NewKeySet generates the three keys of a new customer.
func NewKeySet() (store.KeySet, error) {
	var ks store.KeySet
	for _, k := range []*store.StoredKey{&ks.Previous, &ks.Current, &ks.Next} {
		var err error
		if *k, err = NewStoredKey(); err != nil {
			return store.KeySet{}, err
		}
	}
	return ks, nil
}

// KeySetJWKS returns the JWKS document of a key set's public keys.
func KeySetJWKS(ks store.KeySet) ([]byte, error) {
	var pubs []*rsa.PublicKey
	for _, k := range ks.Keys() {
		sk, err := ParseKey(k.DER)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, &sk.Private.PublicKey)
	}
	return JWKS(pubs...)
}
