package bolt

import (
	"testing"
	"time"

	"hookd/store"
	"hookd/store/storetest"
)

// TestContract runs the store's behaviour suite against the bolt backend,
// each test on a fresh file whose consistency is checked at the end.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		db, err := Open(t.TempDir(), Options{NoSync: true, Now: now})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		t.Cleanup(func() {
			if err := db.Check(); err != nil {
				t.Errorf("consistency check: %v", err)
			}
			db.Close()
		})
		return db
	})
}
