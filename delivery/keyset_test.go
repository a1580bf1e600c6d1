package delivery

import (
	"encoding/json"
	"testing"

	"hookd/store"
)

func TestNewKeySetAndItsJWKS(t *testing.T) {
	ks, err := NewKeySet()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, k := range ks.Keys() {
		sk, err := ParseKey(k.DER)
		if err != nil {
			t.Fatalf("key %s: got %v, want it to parse", k.ID, err)
		}
		if sk.ID != k.ID {
			t.Errorf("got stored id %s, want the key's thumbprint %s", k.ID, sk.ID)
		}
		ids[k.ID] = true
	}
	if len(ids) != 3 {
		t.Fatalf("got %d distinct keys, want 3", len(ids))
	}
	doc, err := KeySetJWKS(ks)
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(doc, &jwks); err != nil {
		t.Fatal(err)
	}
	for _, k := range jwks.Keys {
		delete(ids, k.Kid)
	}
	if len(jwks.Keys) != 3 || len(ids) != 0 {
		t.Errorf("got JWKS %s, want the three keys of the set", doc)
	}
	if _, err := KeySetJWKS(store.KeySet{Current: store.StoredKey{ID: "x", DER: []byte("not a key")}}); err == nil {
		t.Error("got no error for a key that does not parse, want one")
	}
}
