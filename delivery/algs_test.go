package delivery

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"hookd/store/bolt"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"hookd/secevent"
	"hookd/store"
)

// jwksKey finds kid in a JWKS document made by KeySetJWKS.
func jwksKey(t *testing.T, doc []byte, kid string) jose.JSONWebKey {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("go-jose refuses the JWKS %s: %v", doc, err)
	}
	keys := set.Key(kid)
	if len(keys) == 0 {
		t.Fatalf("got no key with kid %s in %s, want one", kid, doc)
	}
	return keys[0]
}

// verifyWith checks token with go-jose, allowing alg only, against the key
// of its kid in doc, and returns the header and payload.
func verifyWith(t *testing.T, doc []byte, token, alg string) (jose.Header, []byte) {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		t.Fatalf("go-jose refuses the %s token: %v", alg, err)
	}
	h := jws.Signatures[0].Protected
	payload, err := jws.Verify(jwksKey(t, doc, h.KeyID))
	if err != nil {
		t.Fatalf("go-jose: the %s token does not verify: %v", alg, err)
	}
	return h, payload
}

// TestSignersRoundTrip: a Signer of each algorithm makes a compact JWS
// whose header names the algorithm and the key, that go-jose verifies
// with the key as the JWKS publishes it, over the claims unchanged.
func TestSignersRoundTrip(t *testing.T) {
	claims := secevent.AppendClaims(nil, goldenClaims)
	for _, alg := range store.SigningAlgs {
		t.Run(alg, func(t *testing.T) {
			k, err := GenerateStoredKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			if k.Alg != alg {
				t.Errorf("got stored alg %q, want %q", k.Alg, alg)
			}
			s, err := NewStoredSigner(k)
			if err != nil {
				t.Fatal(err)
			}
			if s.Alg() != alg || s.KeyID() != k.ID {
				t.Errorf("got signer %s %s, want %s %s", s.Alg(), s.KeyID(), alg, k.ID)
			}
			token, err := s.Sign(claims)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(token, ".")
			if len(parts) != 3 {
				t.Fatalf("got %d parts, want 3", len(parts))
			}
			header, _ := b64.DecodeString(parts[0])
			if want := `{"alg":"` + alg + `","kid":"` + k.ID + `","typ":"secevent+jwt"}`; string(header) != want {
				t.Errorf("got header %s, want %s", header, want)
			}
			if !SignedWith(token, alg) {
				t.Errorf("SignedWith(token, %s): got false, want true", alg)
			}
			for _, other := range store.SigningAlgs {
				if other != alg && SignedWith(token, other) {
					t.Errorf("SignedWith(%s token, %s): got true, want false", alg, other)
				}
			}
			sig, _ := b64.DecodeString(parts[2])
			wantLen := map[string]int{store.AlgRS256: 256, store.AlgES256: 64, store.AlgEdDSA: 64}[alg]
			if len(sig) != wantLen {
				t.Errorf("got a %d-byte signature, want %d (ES256: raw R||S, not ASN.1)", len(sig), wantLen)
			}
			doc, err := KeySetJWKS(store.KeySet{KeyTriple: store.KeyTriple{Previous: k, Current: k, Next: k}})
			if err != nil {
				t.Fatal(err)
			}
			h, payload := verifyWith(t, doc, token, alg)
			if h.Algorithm != alg || h.KeyID != k.ID || !bytes.Equal(payload, claims) {
				t.Errorf("got header alg %s kid %s payload %s, want %s %s and the claims", h.Algorithm, h.KeyID, payload, alg, k.ID)
			}
			// A changed payload does not verify.
			tampered := parts[0] + "." + b64.EncodeToString(append(bytes.Clone(claims), ' ')) + "." + parts[2]
			jws, err := jose.ParseSigned(tampered, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err == nil {
				if _, err := jws.Verify(jwksKey(t, doc, k.ID)); err == nil {
					t.Error("got a tampered token verified, want it refused")
				}
			}
		})
	}
}

// TestEdDSAMatchesGoJose: EdDSA is deterministic, so the token is byte
// for byte go-jose's for the same key, header and claims.
func TestEdDSAMatchesGoJose(t *testing.T) {
	k, err := GenerateStoredKey(store.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStoredSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(k.DER)
	if err != nil {
		t.Fatal(err)
	}
	claims := secevent.AppendClaims(nil, goldenClaims)
	want := goJoseToken(t, jose.EdDSA, parsed, k.ID, claims)
	if got, err := s.Sign(claims); err != nil || got != want {
		t.Errorf("got %s (%v), want go-jose's %s", got, err, want)
	}
}

// TestNewStoredSignerRefuses: a key of another algorithm than its record
// says, a curve other than P-256, a wrong kid and bytes that are no key.
func TestNewStoredSignerRefuses(t *testing.T) {
	es, err := GenerateStoredKey(store.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der384, _ := x509.MarshalPKCS8PrivateKey(p384)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	derEd, _ := x509.MarshalPKCS8PrivateKey(ed)
	for name, k := range map[string]store.StoredKey{
		"ES256 key stored as EdDSA":   {Alg: store.AlgEdDSA, ID: es.ID, DER: es.DER},
		"ES256 key stored as RS256":   {ID: es.ID, DER: es.DER},
		"Ed25519 key stored as ES256": {Alg: store.AlgES256, ID: "x", DER: derEd},
		"P-384 key":                   {Alg: store.AlgES256, ID: "x", DER: der384},
		"wrong kid":                   {Alg: store.AlgES256, ID: "not-the-thumbprint", DER: es.DER},
		"not a key":                   {Alg: store.AlgES256, ID: "x", DER: []byte("garbage")},
	} {
		if _, err := NewStoredSigner(k); err == nil {
			t.Errorf("%s: got a signer, want an error", name)
		}
	}
}

// TestNewKeySetAllAlgorithms: a new customer's set has a triple of
// distinct keys for each algorithm, and its JWKS publishes all nine with
// the members of their key types.
func TestNewKeySetAllAlgorithms(t *testing.T) {
	ks, err := NewKeySet()
	if err != nil {
		t.Fatal(err)
	}
	if m := ks.Missing(); len(m) != 0 {
		t.Fatalf("got missing algorithms %v, want none", m)
	}
	doc, err := KeySetJWKS(ks)
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct{ Keys []map[string]any }
	if err := json.Unmarshal(doc, &jwks); err != nil {
		t.Fatal(err)
	}
	if len(jwks.Keys) != 9 {
		t.Fatalf("got %d keys, want 9", len(jwks.Keys))
	}
	seen := map[string]bool{}
	for i, k := range jwks.Keys {
		alg := store.SigningAlgs[i/3]
		want := map[string]map[string]any{
			store.AlgRS256: {"kty": "RSA"},
			store.AlgES256: {"kty": "EC", "crv": "P-256"},
			store.AlgEdDSA: {"kty": "OKP", "crv": "Ed25519"},
		}[alg]
		for m, v := range want {
			if k[m] != v {
				t.Errorf("key %d (%s): got %s %v, want %v", i, alg, m, k[m], v)
			}
		}
		if k["alg"] != alg || k["use"] != "sig" || k["d"] != nil {
			t.Errorf("key %d: got %v, want a public %s signing key", i, k, alg)
		}
		kid, _ := k["kid"].(string)
		if want := ks.Keys()[i].ID; kid != want || seen[kid] {
			t.Errorf("key %d: got kid %s, want %s, distinct", i, kid, want)
		}
		seen[kid] = true
	}
}

// TestMissingKeyTriplesAndRotation: a set holding only RS256 keys (a
// customer created before the other algorithms) is completed once, and a
// rotation then rotates all three triples.
func TestMissingKeyTriplesAndRotation(t *testing.T) {
	db, err := bolt.Open(t.TempDir(), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	full, err := NewKeySet()
	if err != nil {
		t.Fatal(err)
	}
	old := store.KeySet{KeyTriple: full.KeyTriple}
	customer := uuid.New()
	if _, err := db.CreateClient(customer, uuid.New(), store.HashSecret("s"), func() (store.KeySet, error) { return old, nil }); err != nil {
		t.Fatal(err)
	}
	missing, err := MissingKeyTriples(old)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 2 || missing[0].Alg() != store.AlgES256 || missing[1].Alg() != store.AlgEdDSA {
		t.Fatalf("got %d missing triples, want ES256 and EdDSA", len(missing))
	}
	ks, err := db.AddKeyTriples(customer, missing)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.Missing()) != 0 || ks.Current.ID != full.Current.ID {
		t.Fatalf("got set missing %v with RS256 current %s, want complete with %s", ks.Missing(), ks.Current.ID, full.Current.ID)
	}
	// Adding again keeps the first triples.
	again, err := MissingKeyTriples(old)
	if err != nil {
		t.Fatal(err)
	}
	if ks2, err := db.AddKeyTriples(customer, again); err != nil || ks2.Others[0].Current.ID != ks.Others[0].Current.ID {
		t.Errorf("second completion: got %v, %v; want the first triples kept", ks2.Others, err)
	}

	next, err := NewStoredKeys(ks)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := db.RotateKeys(customer, next)
	if err != nil {
		t.Fatal(err)
	}
	for i, before := range ks.Triples() {
		after := rotated.Triples()[i]
		if after.Previous.ID != before.Current.ID || after.Current.ID != before.Next.ID || after.Next.ID != next[i].ID || after.Alg() != before.Alg() {
			t.Errorf("%s: got %+v after rotating %+v, want current and next moved up and the new next key", before.Alg(), after, before)
		}
	}
	if _, err := db.RotateKeys(customer, next[:2]); err == nil {
		t.Error("rotation with a key missing: got nil error, want one")
	}
}

// TestDispatcherSignsWithTheSubscriptionsAlg: a subscription's tokens are
// signed with the current key of its algorithm (the keys are made on
// first use for a customer created with RS256 keys only), and a token
// stored with another algorithm is signed again when the event is
// redelivered after the subscription changed algorithm.
func TestDispatcherSignsWithTheSubscriptionsAlg(t *testing.T) {
	env := newDispatchEnv(t, DispatcherOptions{}, ClientOptions{})
	// The first request is redirected: the event fails at once.
	l := newListener(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			http.Redirect(w, r, "https://elsewhere.example/", http.StatusTemporaryRedirect)
		}
	})
	s := env.addSub(l.URL)
	if _, _, err := env.db.UpdateSubscription(s.CustomerID, s.ID, func(x *store.Subscription) error { x.SigningAlg = store.AlgES256; return nil }); err != nil {
		t.Fatal(err)
	}
	a := env.post(s, 1)[0]
	failed := env.waitState(s, a.ID, store.Failure)
	ks, err := env.db.KeySet(env.customer)
	if err != nil {
		t.Fatal(err)
	}
	if m := ks.Missing(); len(m) != 0 {
		t.Fatalf("got missing algorithms %v after an ES256 delivery, want the keys made", m)
	}
	doc, err := KeySetJWKS(ks)
	if err != nil {
		t.Fatal(err)
	}
	es, _ := ks.Triple(store.AlgES256)
	h, first := verifyWith(t, doc, failed.JWS, store.AlgES256)
	if h.KeyID != es.Current.ID {
		t.Errorf("got kid %s, want the current ES256 key %s", h.KeyID, es.Current.ID)
	}

	if _, _, err := env.db.UpdateSubscription(s.CustomerID, s.ID, func(x *store.Subscription) error { x.SigningAlg = store.AlgEdDSA; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := env.db.Redeliver(s.CustomerID, s.ID, a.ID); err != nil {
		t.Fatal(err)
	}
	env.d.Notify(s.ID)
	done := env.waitState(s, a.ID, store.Success)
	ed, _ := ks.Triple(store.AlgEdDSA)
	h, second := verifyWith(t, doc, done.JWS, store.AlgEdDSA)
	if h.KeyID != ed.Current.ID {
		t.Errorf("got kid %s, want the current EdDSA key %s", h.KeyID, ed.Current.ID)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("got claims %s after the change, want those of the first token %s", second, first)
	}
	if toks := l.received(); len(toks) != 2 || toks[1] != done.JWS {
		t.Errorf("got %d tokens, want 2, the last the stored EdDSA one", len(toks))
	}
}
