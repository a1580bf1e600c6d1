package httpapi

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// testTenant opens a store in a temporary directory with one customer, a
// client and a valid access token for it. The store is checked for
// consistency and closed at the end of the test.
func testTenant(t *testing.T) (db *store.DB, customer uuid.UUID, token string) {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		db.Close()
	})
	customer = uuid.New()
	noKeys := func() (store.KeySet, error) { return store.KeySet{}, nil }
	cl, err := db.CreateClient(customer, uuid.New(), store.HashSecret("secret"), noKeys)
	if err != nil {
		t.Fatal(err)
	}
	token = "test-token-" + uuid.NewString()
	if err := db.PutToken(store.HashSecret(token), store.Token{CustomerID: customer, ClientID: cl.ID, Scope: WebhooksScope, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return db, customer, token
}
