package bolt

import (
	"bytes"
	"hookd/store"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// The behaviour of tenants, clients, tokens and keys is tested by the
// store's suite (store/storetest/tenants.go); these tests read the file.

func TestSecretsAndTokensStoredAsHashesOnly(t *testing.T) {
	db := openTestDB(t)
	secret := "client-secret-8c1f0e6b9a7d4b2e"
	token := "access-token-3f9a1c7e5b2d4068"
	cust, cl := uuid.New(), uuid.New()
	keys := func() (store.KeySet, error) {
		return store.KeySet{KeyTriple: store.KeyTriple{Current: store.StoredKey{ID: "k", DER: []byte("der")}}}, nil
	}
	if _, err := db.CreateClient(cust, cl, store.HashSecret(secret), keys); err != nil {
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
	if _, err := db.LookupToken(store.HashSecret(token)); err != nil {
		t.Errorf("LookupToken: got %v, want the stored token", err)
	}
}

// TestKeySetLegacyRecord: a key set record written before the other
// algorithms (RS256 keys only, no alg members) reads as the RS256 triple
// and lacks the other algorithms, which AddKeyTriples then adds.
func TestKeySetLegacyRecord(t *testing.T) {
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
	if ks.Current.ID != "r-cur" || ks.Alg() != store.AlgRS256 || len(ks.Triples()) != 1 || !bytes.Equal(ks.Next.DER, []byte{3}) {
		t.Fatalf("got %+v, want the RS256 triple alone", ks)
	}
	if got := ks.Missing(); !slices.Equal(got, []string{store.AlgES256, store.AlgEdDSA}) {
		t.Errorf("got missing %v, want ES256 and EdDSA", got)
	}
	ec := store.KeyTriple{Current: store.StoredKey{Alg: store.AlgES256, ID: "ec-cur"}}
	ks, err = db.AddKeyTriples(cust, []store.KeyTriple{ec})
	if err != nil || len(ks.Triples()) != 2 || ks.Others[0].Current.ID != "ec-cur" || ks.Current.ID != "r-cur" {
		t.Errorf("AddKeyTriples: got %+v, %v; want the RS256 triple and the ES256 one", ks, err)
	}
}

// A customer once found is answered from memory: the intake asks for
// every request, and each read transaction contends for bbolt's meta lock
// with the commits. An unknown id still reads the file every time (and
// is found once created).
func TestCustomerExistsReadsTheFileOnlyUntilFound(t *testing.T) {
	db := openTestDB(t)
	cust := uuid.New()
	txs := func() int { return db.bolt.Stats().TxN }
	for range 2 {
		before := txs()
		if ok, err := db.CustomerExists(cust); err != nil || ok {
			t.Fatalf("got %v, %v for a customer not created, want false", ok, err)
		}
		if txs() == before {
			t.Fatal("an unknown customer was answered without reading the file")
		}
	}
	keys := func() (store.KeySet, error) {
		return store.KeySet{KeyTriple: store.KeyTriple{Current: store.StoredKey{ID: "k", DER: []byte("der")}}}, nil
	}
	if _, err := db.CreateClient(cust, uuid.New(), store.HashSecret("s"), keys); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.CustomerExists(cust); err != nil || !ok {
		t.Fatalf("got %v, %v for a created customer, want true", ok, err)
	}
	before := txs()
	for range 100 {
		if ok, err := db.CustomerExists(cust); err != nil || !ok {
			t.Fatalf("got %v, %v for a created customer, want true", ok, err)
		}
	}
	if n := txs() - before; n != 0 {
		t.Errorf("100 calls for a known customer began %d read transactions, want 0", n)
	}
}
