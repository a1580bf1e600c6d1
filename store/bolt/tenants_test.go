package bolt

import (
	"bytes"
	"errors"
	"hookd/store"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// testKeySet is a key set with fake key material: the store never parses it.
func testKeySet(tag string) store.KeySet {
	return store.KeySet{KeyTriple: store.KeyTriple{
		Previous: store.StoredKey{ID: tag + "-prev", DER: []byte(tag + "-prev-der")},
		Current:  store.StoredKey{ID: tag + "-cur", DER: []byte(tag + "-cur-der")},
		Next:     store.StoredKey{ID: tag + "-next", DER: []byte(tag + "-next-der")},
	}}
}

// keyGen counts its calls.
type keyGen struct {
	calls int
	tag   string
}

func (k *keyGen) gen() (store.KeySet, error) {
	k.calls++
	return testKeySet(k.tag), nil
}

func TestCreateClientCreatesCustomerAndKeysOnce(t *testing.T) {
	db := openTestDB(t)
	cust := uuid.New()
	if db.CustomerExists(cust) {
		t.Fatal("got customer before any client, want none")
	}
	if _, err := db.KeySet(cust); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("KeySet of unknown customer: got %v, want ErrNotFound", err)
	}
	gen := &keyGen{tag: "a"}
	c1, c2 := uuid.New(), uuid.New()
	if _, err := db.CreateClient(cust, c1, store.HashSecret("s1"), gen.gen); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateClient(cust, c2, store.HashSecret("s2"), gen.gen); err != nil {
		t.Fatal(err)
	}
	if gen.calls != 1 {
		t.Errorf("got %d key generations, want 1 (keys come with the first client)", gen.calls)
	}
	if !db.CustomerExists(cust) {
		t.Error("got no customer after its first client, want it created")
	}
	ks, err := db.KeySet(cust)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Current.ID != "a-cur" || ks.RotatedAt.IsZero() {
		t.Errorf("got key set %+v, want the generated one with a rotation time", ks)
	}
	clients, err := db.Clients(cust)
	if err != nil {
		t.Fatal(err)
	}
	if len(clients) != 2 {
		t.Fatalf("got %d clients, want 2", len(clients))
	}
	// The same client id twice is a conflict.
	if _, err := db.CreateClient(cust, c1, store.HashSecret("again"), gen.gen); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate client id: got %v, want ErrConflict", err)
	}
	// Another customer's list is empty, not an error.
	other, err := db.Clients(uuid.New())
	if err != nil || len(other) != 0 {
		t.Errorf("clients of unknown customer: got %v, %v; want [], nil", other, err)
	}
	customers, err := db.Customers()
	if err != nil || len(customers) != 1 || customers[0] != cust {
		t.Errorf("got customers %v, %v; want [%s]", customers, err, cust)
	}
}

func TestClientsOldestFirst(t *testing.T) {
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	db, err := Open(t.TempDir(), Options{NoSync: true, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cust := uuid.New()
	gen := &keyGen{tag: "o"}
	var want []uuid.UUID
	for i := 0; i < 6; i++ {
		clock = clock.Add(time.Millisecond)
		id := uuid.New()
		if _, err := db.CreateClient(cust, id, store.HashSecret(id.String()), gen.gen); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	got, err := db.Clients(cust)
	if err != nil || len(got) != len(want) {
		t.Fatalf("got %d clients, %v; want %d", len(got), err, len(want))
	}
	for i := range want {
		if got[i].ID != want[i] {
			t.Errorf("clients[%d]: got %s, want %s (creation order)", i, got[i].ID, want[i])
		}
	}
}

func TestAuthenticate(t *testing.T) {
	db := openTestDB(t)
	custA, custB := uuid.New(), uuid.New()
	clA := uuid.New()
	if _, err := db.CreateClient(custA, clA, store.HashSecret("right"), (&keyGen{tag: "a"}).gen); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		customer uuid.UUID
		client   uuid.UUID
		secret   string
		wantErr  error
	}{
		{"right", custA, clA, "right", nil},
		{"wrong secret", custA, clA, "wrong", store.ErrNotFound},
		{"empty secret", custA, clA, "", store.ErrNotFound},
		{"unknown client", custA, uuid.New(), "right", store.ErrNotFound},
		{"other customer", custB, clA, "right", store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := db.Authenticate(tc.customer, tc.client, tc.secret)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			if err == nil && cl.ID != clA {
				t.Errorf("got client %s, want %s", cl.ID, clA)
			}
		})
	}
}

func TestSecretsAndTokensStoredAsHashesOnly(t *testing.T) {
	db := openTestDB(t)
	secret := "client-secret-8c1f0e6b9a7d4b2e"
	token := "access-token-3f9a1c7e5b2d4068"
	cust, cl := uuid.New(), uuid.New()
	if _, err := db.CreateClient(cust, cl, store.HashSecret(secret), (&keyGen{tag: "k"}).gen); err != nil {
		t.Fatal(err)
	}
	if err := db.PutToken(store.HashSecret(token), store.Token{CustomerID: cust, ClientID: cl, Scope: "*:webhooks/**", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secret, token} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("got %q in the data file, want only its hash", s)
		}
	}
	got, err := db.LookupToken(store.HashSecret(token))
	if err != nil || got.ClientID != cl || got.Scope != "*:webhooks/**" {
		t.Errorf("LookupToken: got %+v, %v; want the stored token", got, err)
	}
	if _, err := db.LookupToken(store.HashSecret("never issued")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupToken of unknown token: got %v, want ErrNotFound", err)
	}
}

func TestRevokeClientMarksTokensRevoked(t *testing.T) {
	db := openTestDB(t)
	cust, other := uuid.New(), uuid.New()
	gone, kept := uuid.New(), uuid.New()
	gen := &keyGen{tag: "r"}
	for _, cl := range []uuid.UUID{gone, kept} {
		if _, err := db.CreateClient(cust, cl, store.HashSecret(cl.String()), gen.gen); err != nil {
			t.Fatal(err)
		}
	}
	exp := time.Now().Add(time.Hour)
	tokens := map[string]uuid.UUID{"g1": gone, "g2": gone, "k1": kept}
	for tok, cl := range tokens {
		if err := db.PutToken(store.HashSecret(tok), store.Token{CustomerID: cust, ClientID: cl, Scope: "s", ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	// Revoking through another customer finds nothing and changes nothing.
	if err := db.RevokeClient(other, gone); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke through other customer: got %v, want ErrNotFound", err)
	}
	if err := db.RevokeClient(cust, gone); err != nil {
		t.Fatal(err)
	}
	for tok, cl := range tokens {
		got, err := db.LookupToken(store.HashSecret(tok))
		if err != nil {
			t.Fatalf("token %s: %v", tok, err)
		}
		if want := cl == gone; got.Revoked != want {
			t.Errorf("token %s: got revoked %v, want %v", tok, got.Revoked, want)
		}
	}
	if _, err := db.Authenticate(cust, gone, gone.String()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("authenticate revoked client: got %v, want ErrNotFound", err)
	}
	clients, _ := db.Clients(cust)
	if len(clients) != 1 || clients[0].ID != kept {
		t.Errorf("got clients %v, want only %s", clients, kept)
	}
	if err := db.RevokeClient(cust, gone); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second revoke: got %v, want ErrNotFound", err)
	}
}

func TestDeleteExpiredTokens(t *testing.T) {
	db := openTestDB(t)
	now := time.Now()
	cust, cl := uuid.New(), uuid.New()
	// Tokens are kept ExpiredTokenGrace after they expire: the third one,
	// expired a minute ago, is still told apart from an unknown token.
	g := store.ExpiredTokenGrace
	for i, exp := range []time.Duration{-g - 3*time.Hour, -g - 2*time.Hour, -g - time.Minute, -time.Minute, time.Hour} {
		tok := string(rune('a' + i))
		if err := db.PutToken(store.HashSecret(tok), store.Token{CustomerID: cust, ClientID: cl, ExpiresAt: now.Add(exp)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := db.DeleteExpiredTokens(now, 2)
	if err != nil || n != 2 {
		t.Fatalf("first batch: got %d, %v; want 2, nil", n, err)
	}
	n, err = db.DeleteExpiredTokens(now, 2)
	if err != nil || n != 1 {
		t.Fatalf("second batch: got %d, %v; want 1, nil", n, err)
	}
	if n, _ := db.DeleteExpiredTokens(now, 2); n != 0 {
		t.Errorf("third batch: got %d, want 0", n)
	}
	for i, want := range []bool{false, false, false, true, true} {
		_, err := db.LookupToken(store.HashSecret(string(rune('a' + i))))
		if got := err == nil; got != want {
			t.Errorf("token %d: got present %v, want %v", i, got, want)
		}
	}
}

func TestRotateKeysOrder(t *testing.T) {
	clock := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	db, err := Open(t.TempDir(), Options{NoSync: true, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cust := uuid.New()
	if _, err := db.CreateClient(cust, uuid.New(), store.HashSecret("x"), (&keyGen{tag: "k"}).gen); err != nil {
		t.Fatal(err)
	}
	before, _ := db.KeySet(cust)
	clock = clock.Add(time.Hour)
	after, err := db.RotateKeys(cust, []store.StoredKey{{ID: "k-new", DER: []byte("new")}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{before.Current.ID, before.Next.ID, "k-new"}
	for i, k := range after.Keys() {
		if k.ID != want[i] {
			t.Errorf("key %d after rotation: got %s, want %s", i, k.ID, want[i])
		}
	}
	if !after.RotatedAt.Equal(clock) {
		t.Errorf("got rotatedAt %v, want %v", after.RotatedAt, clock)
	}
	stored, _ := db.KeySet(cust)
	if stored.Current.ID != before.Next.ID || !bytes.Equal(stored.Next.DER, []byte("new")) {
		t.Errorf("got stored set %+v, want the rotated one", stored)
	}
	if _, err := db.RotateKeys(uuid.New(), []store.StoredKey{{ID: "x"}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rotate unknown customer: got %v, want ErrNotFound", err)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

// TestKeySetAlgorithms: a key set record written before the other
// algorithms (RS256 keys only, no alg members) reads as the RS256 triple;
// AddKeyTriples completes it once, in SigningAlgs order; RotateKeys then
// rotates every triple and wants one new key per algorithm.
func TestKeySetAlgorithms(t *testing.T) {
	db := openTestDB(t)
	cust := uuid.New()
	old := `{"previous":{"kid":"r-prev","der":"AQ=="},"current":{"kid":"r-cur","der":"Ag=="},"next":{"kid":"r-next","der":"Aw=="},"rotatedAt":"2025-01-02T03:04:05Z"}`
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketKeys).Put(cust[:], []byte(old))
	})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := db.KeySet(cust)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Current.ID != "r-cur" || ks.Alg() != store.AlgRS256 || len(ks.Triples()) != 1 {
		t.Fatalf("got %+v, want the RS256 triple alone", ks)
	}
	if got := ks.Missing(); !slices.Equal(got, []string{store.AlgES256, store.AlgEdDSA}) {
		t.Errorf("got missing %v, want ES256 and EdDSA", got)
	}
	triple := func(alg, tag string) store.KeyTriple {
		k := func(role string) store.StoredKey {
			return store.StoredKey{Alg: alg, ID: tag + "-" + role, DER: []byte(tag)}
		}
		return store.KeyTriple{Previous: k("prev"), Current: k("cur"), Next: k("next")}
	}
	// Added out of order, and with a triple the set already has.
	ks, err = db.AddKeyTriples(cust, []store.KeyTriple{triple(store.AlgEdDSA, "ed"), triple(store.AlgRS256, "other"), triple(store.AlgES256, "ec")})
	if err != nil {
		t.Fatal(err)
	}
	var algs, cur []string
	for _, tr := range ks.Triples() {
		algs, cur = append(algs, tr.Alg()), append(cur, tr.Current.ID)
	}
	if !slices.Equal(algs, store.SigningAlgs) || !slices.Equal(cur, []string{"r-cur", "ec-cur", "ed-cur"}) {
		t.Errorf("got triples %v with current keys %v, want %v with r-cur, ec-cur, ed-cur", algs, cur, store.SigningAlgs)
	}
	if len(ks.Keys()) != 9 || len(ks.Missing()) != 0 {
		t.Errorf("got %d keys, missing %v; want 9 and none", len(ks.Keys()), ks.Missing())
	}
	if again, err := db.AddKeyTriples(cust, []store.KeyTriple{triple(store.AlgES256, "late")}); err != nil || again.Others[0].Current.ID != "ec-cur" {
		t.Errorf("a second ES256 triple: got %+v, %v; want the first kept", again.Others, err)
	}

	// A rotation needs a new key of every algorithm.
	if _, err := db.RotateKeys(cust, []store.StoredKey{{Alg: store.AlgRS256, ID: "r-new"}, {Alg: store.AlgES256, ID: "ec-new"}}); err == nil {
		t.Error("rotation without an EdDSA key: got nil error, want one")
	}
	if _, err := db.RotateKeys(cust, []store.StoredKey{{Alg: store.AlgRS256, ID: "r-new"}, {Alg: store.AlgES256, ID: "ec-new"}, {Alg: store.AlgES256, ID: "ec-new2"}}); err == nil {
		t.Error("rotation with two ES256 keys and no EdDSA key: got nil error, want one")
	}
	unchanged, _ := db.KeySet(cust)
	if unchanged.Current.ID != "r-cur" {
		t.Errorf("a refused rotation changed the set: %+v", unchanged)
	}
	rotated, err := db.RotateKeys(cust, []store.StoredKey{{Alg: store.AlgEdDSA, ID: "ed-new"}, {ID: "r-new"}, {Alg: store.AlgES256, ID: "ec-new"}})
	if err != nil {
		t.Fatal(err)
	}
	want := [][3]string{{"r-cur", "r-next", "r-new"}, {"ec-cur", "ec-next", "ec-new"}, {"ed-cur", "ed-next", "ed-new"}}
	for i, tr := range rotated.Triples() {
		if got := [3]string{tr.Previous.ID, tr.Current.ID, tr.Next.ID}; got != want[i] || tr.Alg() != store.SigningAlgs[i] {
			t.Errorf("%s after rotation: got %v, want %v", tr.Alg(), got, want[i])
		}
	}
	stored, _ := db.KeySet(cust)
	if len(stored.Keys()) != 9 || stored.Others[1].Current.ID != "ed-next" {
		t.Errorf("got stored set %+v, want the rotated one", stored)
	}
}
