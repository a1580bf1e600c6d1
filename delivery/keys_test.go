package delivery

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"math/big"
	"sync"
	"testing"
)

// testKeys holds keys generated once for the package's tests: RSA-2048
// generation is too slow to repeat in every test.
var testKeys = sync.OnceValues(func() ([]SigningKey, error) {
	keys := make([]SigningKey, 2)
	for i := range keys {
		k, err := NewSigningKey()
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	return keys, nil
})

// testKey returns the i-th shared test key (0 or 1).
func testKey(t testing.TB, i int) SigningKey {
	t.Helper()
	keys, err := testKeys()
	if err != nil {
		t.Fatalf("NewSigningKey: %v", err)
	}
	return keys[i]
}

// thumbprint computes the RFC 7638 thumbprint by the letter of the RFC,
// independently of go-jose.
func thumbprint(pub *rsa.PublicKey) string {
	e := big.NewInt(int64(pub.E)).Bytes()
	canon := `{"e":"` + b64.EncodeToString(e) + `","kty":"RSA","n":"` + b64.EncodeToString(pub.N.Bytes()) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:])
}

func TestNewSigningKey(t *testing.T) {
	k := testKey(t, 0)
	if got := k.Private.N.BitLen(); got != 2048 {
		t.Errorf("key size: got %d bits, want 2048", got)
	}
	if want := thumbprint(&k.Private.PublicKey); k.ID != want {
		t.Errorf("ID: got %q, want %q", k.ID, want)
	}
	if len(k.ID) != 43 {
		t.Errorf("ID length: got %d, want 43 (base64url SHA-256 without padding)", len(k.ID))
	}
	if other := testKey(t, 1); other.ID == k.ID {
		t.Errorf("two keys share the ID %q", k.ID)
	}
}

func TestMarshalParseKey(t *testing.T) {
	k := testKey(t, 0)
	der, err := MarshalKey(k)
	if err != nil {
		t.Fatalf("MarshalKey: %v", err)
	}
	if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
		t.Fatalf("MarshalKey output is not PKCS#8: %v", err)
	}
	got, err := ParseKey(der)
	if err != nil {
		t.Fatalf("ParseKey: %v", err)
	}
	if got.ID != k.ID {
		t.Errorf("ID: got %q, want %q", got.ID, k.ID)
	}
	if !got.Private.Equal(k.Private) {
		t.Errorf("parsed private key differs from the original")
	}
	// The parsed key signs exactly as the original.
	claims := []byte(`{"jti":"x"}`)
	a, err := Sign(k, claims)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Sign(got, claims)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("token of parsed key: got %q, want %q", b, a)
	}
}

func TestParseKeyRejects(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, err := x509.MarshalPKCS8PrivateKey(small)
	if err != nil {
		t.Fatal(err)
	}
	for name, der := range map[string][]byte{
		"empty":    nil,
		"garbage":  []byte("not a key"),
		"pkcs1":    x509.MarshalPKCS1PrivateKey(small),
		"ecdsa":    ecDER,
		"1024-bit": smallDER,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseKey(der); err == nil {
				t.Errorf("ParseKey: got nil error, want one")
			}
		})
	}
	if _, err := MarshalKey(SigningKey{}); err == nil {
		t.Errorf("MarshalKey of an empty key: got nil error, want one")
	}
}

func TestJWKS(t *testing.T) {
	k0, k1 := testKey(t, 0), testKey(t, 1)
	out, err := JWKS(&k0.Private.PublicKey, &k1.Private.PublicKey)
	if err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(out, &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v\n%s", err, out)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("keys: got %d, want 2", len(set.Keys))
	}
	for i, k := range []SigningKey{k0, k1} {
		got := set.Keys[i]
		pub := &k.Private.PublicKey
		want := map[string]any{
			"kty": "RSA",
			"use": "sig",
			"alg": "RS256",
			"kid": k.ID,
			"n":   b64.EncodeToString(pub.N.Bytes()),
			"e":   "AQAB",
		}
		if len(got) != len(want) {
			t.Errorf("key %d: got members %v, want exactly %v", i, got, want)
		}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("key %d %q: got %v, want %v", i, name, got[name], w)
			}
		}
	}
	if bytes.Contains(out, []byte(`"d"`)) || bytes.Contains(out, []byte(`"p"`)) {
		t.Errorf("JWKS leaks private members: %s", out)
	}

	empty, err := JWKS()
	if err != nil {
		t.Fatalf("JWKS(): %v", err)
	}
	if string(empty) != `{"keys":[]}` {
		t.Errorf("empty JWKS: got %s, want {\"keys\":[]}", empty)
	}
	if _, err := JWKS(nil); err == nil {
		t.Errorf("JWKS(nil): got nil error, want one")
	}
}
