package bolt

import (
	"fmt"
	"hookd/store"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkSearchEvents measures a search by sub and by txn that reads a
// subscription's store.SearchScanLimit newest events and finds one (the
// README's figure): go test -bench BenchmarkSearchEvents -run '^$' ./store/bolt/
func BenchmarkSearchEvents(b *testing.B) {
	db, err := Open(b.TempDir(), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	sub := store.Subscription{ID: uuid.New(), CustomerID: uuid.New(), Title: "bench", Endpoint: "https://x.example/hook",
		Events: []string{"entityCreated"}, Enabled: true, CreatedAt: db.Now(), UpdatedAt: db.Now()}
	if err := db.CreateSubscription(sub, 0); err != nil {
		b.Fatal(err)
	}
	const batch = 10_000
	var wantTxn string
	for i := 0; i < store.SearchScanLimit; i += batch {
		var evs []store.NewEvent
		var ds []store.Delivery
		for j := range batch {
			n := i + j
			txn := uuid.NewString()
			if n == store.SearchScanLimit/2 {
				wantTxn = txn
			}
			// A typical event object of about 250 bytes.
			evs = append(evs, store.NewEvent{Type: "entityCreated", Txn: txn, Toe: int64(n), Payload: fmt.Appendf(nil,
				`{"captureApplicationId":"f3b1c2d4e5","captureClientId":"a1b2c3d4e5f6","entityType":"user","globalSub":"capture-v1://eu.example.com/f3b1c2d4e5/user/%[1]d","sub":"user-%[1]d","attributes":["email","givenName"]}`, n)})
			ds = append(ds, store.Delivery{SubscriptionID: sub.ID, Event: j})
		}
		if _, err := db.AddEvents(evs, ds); err != nil {
			b.Fatal(err)
		}
	}
	// The reference: a list with a type condition, which reads every
	// event of the subscription as it did before searches existed.
	for _, c := range []struct {
		name string
		q    store.EventQuery
		want int
	}{
		{"sub", store.EventQuery{Subject: fmt.Sprintf("user-%d", store.SearchScanLimit/2), Limit: 100}, 1},
		{"txn", store.EventQuery{Txn: wantTxn, Limit: 100}, 1},
		{"reference-type", store.EventQuery{Type: "entityDeleted", Limit: 100}, 0},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				evs, total, err := db.Events(sub.CustomerID, sub.ID, c.q)
				if err != nil || total != c.want || len(evs) != c.want {
					b.Fatalf("got %d events (total %d), %v; want %d", len(evs), total, err, c.want)
				}
			}
		})
	}
}
