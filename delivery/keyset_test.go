package delivery

import (
	"testing"

	"hookd/store"
)

func TestNewKeySetKeysParse(t *testing.T) {
	ks, err := NewKeySet()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, k := range ks.Keys() {
		_, id, err := parseAnyKey(k)
		if err != nil {
			t.Fatalf("key %s (%s): got %v, want it to parse", k.ID, k.Alg, err)
		}
		if id != k.ID {
			t.Errorf("got stored id %s, want the key's thumbprint %s", k.ID, id)
		}
		ids[k.ID] = true
	}
	if len(ids) != 9 {
		t.Fatalf("got %d distinct keys, want 9", len(ids))
	}
	bad := store.KeySet{KeyTriple: store.KeyTriple{Current: store.StoredKey{ID: "x", DER: []byte("not a key")}}}
	if _, err := KeySetJWKS(bad); err == nil {
		t.Error("got no error for a key that does not parse, want one")
	}
}
