package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

func init() {
	register(map[string]func(t *testing.T, open Opener){
		"TenantCreateClientCreatesCustomerAndKeysOnce": testCreateClientCreatesCustomerAndKeysOnce,
		"TenantClientsOldestFirst":                     testClientsOldestFirst,
		"TenantAuthenticate":                           testAuthenticate,
		"TenantTokens":                                 testTokens,
		"TenantRevokeClientMarksTokensRevoked":         testRevokeClientMarksTokensRevoked,
		"TenantDeleteExpiredTokens":                    testDeleteExpiredTokens,
		"TenantRotateKeysOrder":                        testRotateKeysOrder,
		"TenantKeySetAlgorithms":                       testKeySetAlgorithms,
		"TenantCustomers":                              testCustomers,
		"TenantKeysAtOnce":                             testTenantKeysAtOnce,
	})
}

// tenantKeySet is a key set with fake key material: the store never
// parses it. Its keys carry no alg member, as RS256 keys stored before
// the other algorithms do not.
func tenantKeySet(tag string) store.KeySet {
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
	return tenantKeySet(k.tag), nil
}

func testCreateClientCreatesCustomerAndKeysOnce(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust := uuid.New()
	if exists(t, db, cust) {
		t.Fatal("got customer before any client, want none")
	}
	if _, err := db.KeySet(cust); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("KeySet of unknown customer: got %v, want ErrNotFound", err)
	}
	gen := &keyGen{tag: "a"}
	c1, c2 := uuid.New(), uuid.New()
	cl, err := db.CreateClient(cust, c1, store.HashSecret("s1"), gen.gen)
	if err != nil {
		t.Fatal(err)
	}
	if cl.ID != c1 || cl.CustomerID != cust || !cl.CreatedAt.Equal(clock.Now()) || !bytes.Equal(cl.SecretHash, store.HashSecret("s1")) {
		t.Errorf("got client %+v, want %s of %s created now with the hash", cl, c1, cust)
	}
	if _, err := db.CreateClient(cust, c2, store.HashSecret("s2"), gen.gen); err != nil {
		t.Fatal(err)
	}
	if gen.calls != 1 {
		t.Errorf("got %d key generations, want 1 (keys come with the first client)", gen.calls)
	}
	if !exists(t, db, cust) {
		t.Error("got no customer after its first client, want it created")
	}
	ks, err := db.KeySet(cust)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Current.ID != "a-cur" || !ks.RotatedAt.Equal(clock.Now()) || !bytes.Equal(ks.Next.DER, []byte("a-next-der")) || len(ks.Others) != 0 {
		t.Errorf("got key set %+v, want the generated one rotated at creation", ks)
	}
	clients, err := db.Clients(cust)
	if err != nil {
		t.Fatal(err)
	}
	if len(clients) != 2 {
		t.Fatalf("got %d clients, want 2", len(clients))
	}
	// The same client id twice is a conflict and changes nothing.
	if _, err := db.CreateClient(cust, c1, store.HashSecret("again"), gen.gen); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate client id: got %v, want ErrConflict", err)
	}
	if _, err := db.Authenticate(cust, c1, "s1"); err != nil {
		t.Errorf("the first client after a refused duplicate: got %v, want its secret kept", err)
	}
	// The same client id for another customer is a conflict too, and
	// creates no customer.
	other := uuid.New()
	if _, err := db.CreateClient(other, c1, store.HashSecret("x"), gen.gen); !errors.Is(err, store.ErrConflict) {
		t.Errorf("client id of another customer: got %v, want ErrConflict", err)
	}
	if exists(t, db, other) {
		t.Error("a refused client created its customer, want nothing changed")
	}
	// Another customer's list is empty, not an error.
	none, err := db.Clients(uuid.New())
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("clients of unknown customer: got %#v, %v; want [], nil", none, err)
	}
	customers, err := db.Customers()
	if err != nil || len(customers) != 1 || customers[0] != cust {
		t.Errorf("got customers %v, %v; want [%s]", customers, err, cust)
	}
	// A failing key generation creates nothing.
	boom := errors.New("no entropy")
	failing := uuid.New()
	if _, err := db.CreateClient(failing, uuid.New(), store.HashSecret("y"), func() (store.KeySet, error) { return store.KeySet{}, boom }); !errors.Is(err, boom) {
		t.Errorf("failing key generation: got %v, want its error", err)
	}
	if exists(t, db, failing) {
		t.Error("got a customer after its keys failed, want none")
	}
}

func testClientsOldestFirst(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust := uuid.New()
	gen := &keyGen{tag: "o"}
	var want []uuid.UUID
	for i := 0; i < 6; i++ {
		clock.Add(time.Millisecond)
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
		if !bytes.Equal(got[i].SecretHash, store.HashSecret(want[i].String())) || got[i].CustomerID != cust {
			t.Errorf("clients[%d]: got %+v, want its customer and hash", i, got[i])
		}
	}
}

func testAuthenticate(t *testing.T, open Opener) {
	db := open(t, NewClock().Now)
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
			if err == nil && (cl.ID != clA || cl.CustomerID != custA) {
				t.Errorf("got client %+v, want %s of %s", cl, clA, custA)
			}
		})
	}
}

// testTokens: a token is found by its hash, expired or not; storing a
// token under a hash again replaces it.
func testTokens(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust, cl := uuid.New(), uuid.New()
	tok := store.Token{CustomerID: cust, ClientID: cl, Scope: "*:webhooks/**", ExpiresAt: clock.Now().Add(time.Hour)}
	if err := db.PutToken(store.HashSecret("t1"), tok); err != nil {
		t.Fatal(err)
	}
	got, err := db.LookupToken(store.HashSecret("t1"))
	if err != nil || got.CustomerID != cust || got.ClientID != cl || got.Scope != tok.Scope || !got.ExpiresAt.Equal(tok.ExpiresAt) || got.Revoked {
		t.Errorf("LookupToken: got %+v, %v; want %+v", got, err, tok)
	}
	if _, err := db.LookupToken(store.HashSecret("never issued")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupToken of unknown token: got %v, want ErrNotFound", err)
	}
	clock.Add(2 * time.Hour)
	if got, err := db.LookupToken(store.HashSecret("t1")); err != nil || got.ClientID != cl {
		t.Errorf("LookupToken of an expired token: got %+v, %v; want it", got, err)
	}
	again := store.Token{CustomerID: cust, ClientID: cl, Scope: "other", ExpiresAt: clock.Now().Add(time.Hour)}
	if err := db.PutToken(store.HashSecret("t1"), again); err != nil {
		t.Fatal(err)
	}
	if got, err := db.LookupToken(store.HashSecret("t1")); err != nil || got.Scope != "other" || !got.ExpiresAt.Equal(again.ExpiresAt) {
		t.Errorf("after a second PutToken: got %+v, %v; want %+v", got, err, again)
	}
}

func testRevokeClientMarksTokensRevoked(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust, other := uuid.New(), uuid.New()
	gone, kept := uuid.New(), uuid.New()
	gen := &keyGen{tag: "r"}
	for _, cl := range []uuid.UUID{gone, kept} {
		if _, err := db.CreateClient(cust, cl, store.HashSecret(cl.String()), gen.gen); err != nil {
			t.Fatal(err)
		}
	}
	exp := clock.Now().Add(time.Hour)
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
	if _, err := db.Authenticate(cust, gone, gone.String()); err != nil {
		t.Fatalf("after a refused revoke: got %v, want the client kept", err)
	}
	if got, _ := db.LookupToken(store.HashSecret("g1")); got.Revoked {
		t.Fatal("a refused revoke revoked a token")
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

func testDeleteExpiredTokens(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	now := clock.Now()
	cust, cl := uuid.New(), uuid.New()
	// Tokens are kept ExpiredTokenGrace after they expire: the third one,
	// expired a minute ago, is still told apart from an unknown token.
	// They are stored in no particular order of expiry.
	g := store.ExpiredTokenGrace
	expiries := []time.Duration{-g - 3*time.Hour, -g - 2*time.Hour, -g - time.Minute, -time.Minute, time.Hour}
	for _, i := range []int{2, 4, 0, 3, 1} {
		tok := string(rune('a' + i))
		if err := db.PutToken(store.HashSecret(tok), store.Token{CustomerID: cust, ClientID: cl, ExpiresAt: now.Add(expiries[i])}); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{0, -1} {
		if n, err := db.DeleteExpiredTokens(now, limit); err != nil || n != 0 {
			t.Errorf("limit %d: got %d, %v; want 0, nil", limit, n, err)
		}
	}
	n, err := db.DeleteExpiredTokens(now, 2)
	if err != nil || n != 2 {
		t.Fatalf("first batch: got %d, %v; want 2, nil", n, err)
	}
	// The earliest expiries go first.
	for i, want := range []bool{false, false, true} {
		_, err := db.LookupToken(store.HashSecret(string(rune('a' + i))))
		if got := err == nil; got != want {
			t.Errorf("after the first batch, token %d: got present %v, want %v", i, got, want)
		}
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

func testRotateKeysOrder(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust := uuid.New()
	if _, err := db.CreateClient(cust, uuid.New(), store.HashSecret("x"), (&keyGen{tag: "k"}).gen); err != nil {
		t.Fatal(err)
	}
	before, _ := db.KeySet(cust)
	clock.Add(time.Hour)
	after, err := db.RotateKeys(cust, []store.StoredKey{{ID: "k-new", DER: []byte("new")}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{before.Current.ID, before.Next.ID, "k-new"}
	if len(after.Keys()) != len(want) {
		t.Fatalf("got %d keys after rotation, want %d", len(after.Keys()), len(want))
	}
	for i, k := range after.Keys() {
		if k.ID != want[i] {
			t.Errorf("key %d after rotation: got %s, want %s", i, k.ID, want[i])
		}
	}
	if !after.RotatedAt.Equal(clock.Now()) {
		t.Errorf("got rotatedAt %v, want %v", after.RotatedAt, clock.Now())
	}
	stored, _ := db.KeySet(cust)
	if stored.Previous.ID != before.Current.ID || stored.Current.ID != before.Next.ID || !bytes.Equal(stored.Next.DER, []byte("new")) || !stored.RotatedAt.Equal(clock.Now()) {
		t.Errorf("got stored set %+v, want the rotated one", stored)
	}
	if _, err := db.RotateKeys(uuid.New(), []store.StoredKey{{ID: "x"}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rotate unknown customer: got %v, want ErrNotFound", err)
	}
	if _, err := db.AddKeyTriples(uuid.New(), nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("add triples to unknown customer: got %v, want ErrNotFound", err)
	}
}

// testKeySetAlgorithms: a key set of the RS256 triple alone (as customers
// created before the other algorithms have) is completed once by
// AddKeyTriples, in SigningAlgs order, keeping RotatedAt; RotateKeys then
// rotates every triple and wants one new key per algorithm.
func testKeySetAlgorithms(t *testing.T, open Opener) {
	clock := NewClock()
	db := open(t, clock.Now)
	cust := uuid.New()
	if _, err := db.CreateClient(cust, uuid.New(), store.HashSecret("x"), (&keyGen{tag: "r"}).gen); err != nil {
		t.Fatal(err)
	}
	ks, err := db.KeySet(cust)
	if err != nil {
		t.Fatal(err)
	}
	created := ks.RotatedAt
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
	clock.Add(time.Hour)
	// Added out of order, and with a triple the set already has.
	ks, err = db.AddKeyTriples(cust, []store.KeyTriple{triple(store.AlgEdDSA, "ed"), triple(store.AlgRS256, "other"), triple(store.AlgES256, "ec")})
	if err != nil {
		t.Fatal(err)
	}
	checkTriples := func(what string, ks store.KeySet) {
		t.Helper()
		var algs, cur []string
		for _, tr := range ks.Triples() {
			algs, cur = append(algs, tr.Alg()), append(cur, tr.Current.ID)
		}
		if !slices.Equal(algs, store.SigningAlgs) || !slices.Equal(cur, []string{"r-cur", "ec-cur", "ed-cur"}) {
			t.Errorf("%s: got triples %v with current keys %v, want %v with r-cur, ec-cur, ed-cur", what, algs, cur, store.SigningAlgs)
		}
		if len(ks.Keys()) != 9 || len(ks.Missing()) != 0 || !ks.RotatedAt.Equal(created) {
			t.Errorf("%s: got %d keys, missing %v, rotated at %v; want 9, none, %v", what, len(ks.Keys()), ks.Missing(), ks.RotatedAt, created)
		}
		if ed := ks.Others[1]; ed.Previous.Alg != store.AlgEdDSA || !bytes.Equal(ed.Next.DER, []byte("ed")) {
			t.Errorf("%s: got EdDSA triple %+v, want the added one", what, ed)
		}
	}
	checkTriples("returned", ks)
	stored, err := db.KeySet(cust)
	if err != nil {
		t.Fatal(err)
	}
	checkTriples("stored", stored)
	if again, err := db.AddKeyTriples(cust, []store.KeyTriple{triple(store.AlgES256, "late")}); err != nil || again.Others[0].Current.ID != "ec-cur" {
		t.Errorf("a second ES256 triple: got %+v, %v; want the first kept", again.Others, err)
	}

	// A rotation needs a new key of every algorithm; a refused one changes nothing.
	if _, err := db.RotateKeys(cust, []store.StoredKey{{Alg: store.AlgRS256, ID: "r-new"}, {Alg: store.AlgES256, ID: "ec-new"}}); err == nil {
		t.Error("rotation without an EdDSA key: got nil error, want one")
	}
	if _, err := db.RotateKeys(cust, []store.StoredKey{{Alg: store.AlgRS256, ID: "r-new"}, {Alg: store.AlgES256, ID: "ec-new"}, {Alg: store.AlgES256, ID: "ec-new2"}}); err == nil {
		t.Error("rotation with two ES256 keys and no EdDSA key: got nil error, want one")
	}
	unchanged, _ := db.KeySet(cust)
	checkTriples("after refused rotations", unchanged)
	rotated, err := db.RotateKeys(cust, []store.StoredKey{{Alg: store.AlgEdDSA, ID: "ed-new"}, {ID: "r-new"}, {Alg: store.AlgES256, ID: "ec-new"}})
	if err != nil {
		t.Fatal(err)
	}
	want := [][3]string{{"r-cur", "r-next", "r-new"}, {"ec-cur", "ec-next", "ec-new"}, {"ed-cur", "ed-next", "ed-new"}}
	for _, ks := range []store.KeySet{rotated, mustKeySet(t, db, cust)} {
		if len(ks.Triples()) != len(want) {
			t.Fatalf("got %d triples after rotation, want %d", len(ks.Triples()), len(want))
		}
		for i, tr := range ks.Triples() {
			if got := [3]string{tr.Previous.ID, tr.Current.ID, tr.Next.ID}; got != want[i] || tr.Alg() != store.SigningAlgs[i] {
				t.Errorf("%s after rotation: got %v, want %v", tr.Alg(), got, want[i])
			}
		}
		if !ks.RotatedAt.Equal(clock.Now()) {
			t.Errorf("got rotatedAt %v, want %v", ks.RotatedAt, clock.Now())
		}
	}
}

func mustKeySet(t *testing.T, db store.Store, cust uuid.UUID) store.KeySet {
	t.Helper()
	ks, err := db.KeySet(cust)
	if err != nil {
		t.Fatalf("key set of %s: %v", cust, err)
	}
	return ks
}

// testCustomers: Customers lists every customer once, whatever its number
// of clients, in id order.
func testCustomers(t *testing.T, open Opener) {
	db := open(t, NewClock().Now)
	if got, err := db.Customers(); err != nil || len(got) != 0 {
		t.Fatalf("customers of an empty store: got %v, %v; want none", got, err)
	}
	var want []uuid.UUID
	for i := 0; i < 4; i++ {
		cust := uuid.New()
		want = append(want, cust)
		for j := 0; j < 2; j++ {
			if _, err := db.CreateClient(cust, uuid.New(), store.HashSecret("s"), (&keyGen{tag: "c"}).gen); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.SortFunc(want, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	got, err := db.Customers()
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got customers %v, %v; want %v", got, err, want)
	}
}

// testTenantKeysAtOnce: the first clients of a customer created at once
// store one key set, whole (not keys of several generations mixed); key
// triples added at once keep the first stored, and every caller gets it.
func testTenantKeysAtOnce(t *testing.T, open Opener) {
	db := open(t, NewClock().Now)
	const n = 6
	cust := uuid.New()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := &keyGen{tag: fmt.Sprintf("g%d", i)}
			_, errs[i] = db.CreateClient(cust, uuid.New(), store.HashSecret("s"), gen.gen)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	if clients, _ := db.Clients(cust); len(clients) != n {
		t.Errorf("got %d clients, want %d", len(clients), n)
	}
	ks := mustKeySet(t, db, cust)
	tag, _, _ := strings.Cut(ks.Current.ID, "-")
	if want := tenantKeySet(tag); ks.Previous.ID != want.Previous.ID || ks.Next.ID != want.Next.ID || len(ks.Others) != 0 {
		t.Errorf("got key set %+v, want the whole set of one generation", ks)
	}

	sets := make([]store.KeySet, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := store.StoredKey{Alg: store.AlgES256, ID: fmt.Sprintf("ec%d", i)}
			sets[i], errs[i] = db.AddKeyTriples(cust, []store.KeyTriple{{Previous: k, Current: k, Next: k}})
		}()
	}
	wg.Wait()
	stored, ok := mustKeySet(t, db, cust).Triple(store.AlgES256)
	if !ok {
		t.Fatal("got no ES256 triple after adding one")
	}
	for i := range n {
		got, ok := sets[i].Triple(store.AlgES256)
		if errs[i] != nil || !ok || got.Current.ID != stored.Current.ID || len(sets[i].Others) != 1 {
			t.Errorf("caller %d: got %+v, %v; want the stored ES256 triple %s", i, sets[i].Others, errs[i], stored.Current.ID)
		}
	}
}

// exists is CustomerExists, failing the test on an error.
func exists(t *testing.T, db store.Store, customer uuid.UUID) bool {
	t.Helper()
	ok, err := db.CustomerExists(customer)
	if err != nil {
		t.Fatalf("CustomerExists: %v", err)
	}
	return ok
}
