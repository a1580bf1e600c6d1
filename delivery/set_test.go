package delivery

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"hookd/secevent"
	"hookd/store"
)

// goldenClaims are claims to sign, those of secevent's golden file.
var goldenClaims = secevent.Claims{
	Issuer:      "https://hookd.example/1b9e7a52-5f0c-4f57-9a1e-3c2d8f0b6a11/webhooks",
	IssuedAt:    1700000000,
	ID:          "6f2d4c1e-8b7a-4e3f-9d2c-1a0b9c8d7e6f",
	Audience:    []string{"https://listener.example/hooks?a=1&b=2"},
	Txn:         "0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b",
	TimeOfEvent: 1699999990,
	EventType:   "entityUpdated",
	Event:       json.RawMessage(`{"captureApplicationId":"app","captureClientId":"client","entityType":"user","globalSub":"capture-v1://x/y","sub":"s1","attributes":["givenName","email"]}`),
}

func TestSign(t *testing.T) {
	k, other := testKey(t, 0), testKey(t, 1)
	claims := secevent.AppendClaims(nil, goldenClaims)
	token, err := Sign(k, claims)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3: %s", len(parts), token)
	}

	header, err := b64.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("header: %v", err)
	}
	if want := `{"alg":"RS256","kid":"` + k.ID + `","typ":"secevent+jwt"}`; string(header) != want {
		t.Errorf("protected header: got %s, want %s", header, want)
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	if !bytes.Equal(payload, claims) {
		t.Errorf("payload: got %s, want %s", payload, claims)
	}

	// The signature is plain RS256 over header.payload.
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&k.Private.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("RS256 signature does not verify: %v", err)
	}

	// Deterministic, with or without a kept Signer.
	again, err := Sign(k, claims)
	if err != nil {
		t.Fatal(err)
	}
	if again != token {
		t.Errorf("second token: got %s, want %s", again, token)
	}
	s, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Sign(claims); err != nil || got != token {
		t.Errorf("Signer.Sign: got %s, %v, want %s", got, err, token)
	}
	if s.KeyID() != k.ID {
		t.Errorf("KeyID: got %q, want %q", s.KeyID(), k.ID)
	}

	// Verify with the right key gives the claims back; another key fails.
	if got, err := Verify(token, &k.Private.PublicKey); err != nil || !bytes.Equal(got, claims) {
		t.Errorf("Verify: got %s, %v, want the claims", got, err)
	}
	if _, err := Verify(token, &other.Private.PublicKey); err == nil {
		t.Errorf("Verify with another key: got nil error, want one")
	}
	tampered := parts[0] + "." + b64.EncodeToString(secevent.AppendClaims(nil, secevent.Claims{ID: "forged"})) + "." + parts[2]
	if _, err := Verify(tampered, &k.Private.PublicKey); err == nil {
		t.Errorf("Verify of a tampered token: got nil error, want one")
	}

	if _, err := Sign(SigningKey{}, claims); err == nil {
		t.Errorf("Sign with an empty key: got nil error, want one")
	}
}

// BenchmarkSign measures a kept Signer of each algorithm, as the
// dispatcher uses it: claims to compact JWS.
func BenchmarkSign(b *testing.B) {
	claims := secevent.AppendClaims(nil, goldenClaims)
	for _, alg := range store.SigningAlgs {
		b.Run(alg, func(b *testing.B) {
			k, err := GenerateStoredKey(alg)
			if err != nil {
				b.Fatal(err)
			}
			s, err := NewStoredSigner(k)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := s.Sign(claims); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkSignerSign measures a kept Signer, as the dispatcher uses it.
func BenchmarkSignerSign(b *testing.B) {
	s, err := NewSigner(testKey(b, 0))
	if err != nil {
		b.Fatal(err)
	}
	claims := secevent.AppendClaims(nil, goldenClaims)
	for b.Loop() {
		if _, err := s.Sign(claims); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkSignPKCS1v15 is the floor: crypto/rsa alone over the SHA-256 of
// a signing input of the same size, with no JOSE encoding.
func BenchmarkSignPKCS1v15(b *testing.B) {
	k := testKey(b, 0)
	claims := secevent.AppendClaims(nil, goldenClaims)
	input := []byte(`{"alg":"RS256","kid":"` + k.ID + `","typ":"secevent+jwt"}.` + b64.EncodeToString(claims))
	for b.Loop() {
		sum := sha256.Sum256(input)
		if _, err := rsa.SignPKCS1v15(nil, k.Private, crypto.SHA256, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// goJoseToken is the compact token go-jose makes of claims with key, as
// kid, under the header hookd writes.
func goJoseToken(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims []byte) string {
	t.Helper()
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType(TokenType))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := js.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	token, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestSignMatchesGoJose checks that Signer's compact serialization is byte
// for byte the one go-jose makes for the same key, header and claims.
func TestSignMatchesGoJose(t *testing.T) {
	k := testKey(t, 0)
	for _, kid := range []string{k.ID, `kid "quoted" \ and é`} {
		k := SigningKey{ID: kid, Private: k.Private}
		s, err := NewSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []secevent.Claims{goldenClaims, {ID: "x"}, {Issuer: "i", Audience: []string{"a", "b"}, EventType: "t", Event: []byte(`{"k":"\u2028"}`)}} {
			claims := secevent.AppendClaims(nil, c)
			want := goJoseToken(t, jose.RS256, k.Private, kid, claims)
			got, err := s.Sign(claims)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("kid %q, claims %s:\n got %s\nwant %s", kid, claims, got, want)
			}
		}
	}
}

func TestNewSignerRefusesShortKeys(t *testing.T) {
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSigner(SigningKey{ID: "k", Private: short}); err == nil {
		t.Errorf("NewSigner with a 1024-bit key: got nil error, want one")
	}
}

// A signature longer than one pass of Sign's base64 through the stack
// (RSA-4096: 512 bytes) is encoded whole: the token is go-jose's.
func TestSignLongSignatureMatchesGoJose(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	k := SigningKey{ID: "long", Private: priv}
	s, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	claims := secevent.AppendClaims(nil, goldenClaims)
	want := goJoseToken(t, jose.RS256, priv, k.ID, claims)
	for range 2 { // the second with the Signer's buffer reused
		if got, err := s.Sign(claims); err != nil || got != want {
			t.Fatalf("RSA-4096 token:\n got %s, %v\nwant %s", got, err, want)
		}
	}
}

// An EdDSA token costs two allocations: the signature, which
// crypto/ed25519 makes, and the token itself; the signing input's buffer
// is reused.
func TestSignAllocations(t *testing.T) {
	k, err := GenerateStoredKey(store.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStoredSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	claims := secevent.AppendClaims(nil, goldenClaims)
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := s.Sign(claims); err != nil {
			t.Fatal(err)
		}
	}); allocs > 2 {
		t.Errorf("EdDSA Sign: %.0f allocations per token, want at most 2", allocs)
	}
}
