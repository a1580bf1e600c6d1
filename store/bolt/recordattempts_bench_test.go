package bolt

import (
	"hookd/store"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// BenchmarkRecordAttempts stores the outcomes of first attempts as the
// dispatcher does, 64 to a call: delivered, with an EdDSA-sized token and
// the listener's Date header, events of the bench's shape spread over 4
// subscriptions. The store skips fsync, so ns/op is the outcome path's own
// work per outcome: reading, rewriting and committing its record.
func BenchmarkRecordAttempts(b *testing.B) {
	db := openTestDB(b)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // the events' creation time, which their tokens' iat is
	db.now = func() time.Time { return at }
	customer := uuid.New()
	var subs []store.Subscription
	for i := range 4 {
		s := store.Subscription{ID: uuid.New(), CustomerID: customer, Title: string(rune('a' + i)), Endpoint: "https://listener.example/" + string(rune('a'+i)),
			Events: []string{"entityUpdated"}, Enabled: true, SigningAlg: store.AlgEdDSA, CreatedAt: db.Now(), UpdatedAt: db.Now()}
		if err := db.CreateSubscription(s, 0); err != nil {
			b.Fatal(err)
		}
		subs = append(subs, s)
	}
	issuer := "https://hooks.example/" + customer.String() + "/webhooks"
	sig := make([]byte, 64)
	var results []store.AttemptResult
	for len(results) < b.N {
		var evs []store.NewEvent
		var ds []store.Delivery
		for i := range 250 {
			evs = append(evs, store.NewEvent{Type: "entityUpdated", Txn: uuid.NewString(), Toe: 1700000000, Payload: benchEventObject()})
			for _, s := range subs {
				ds = append(ds, store.Delivery{SubscriptionID: s.ID, Event: i})
			}
		}
		added, err := db.AddEvents(evs, ds)
		if err != nil {
			b.Fatal(err)
		}
		now := db.Now().UTC()
		for k, a := range added {
			ne := evs[ds[k].Event]
			endpoint := subs[k%len(subs)].Endpoint
			e := store.Event{ID: a.ID, CreatedAt: at, Type: ne.Type, Txn: ne.Txn, Toe: ne.Toe, Payload: ne.Payload}
			results = append(results, store.AttemptResult{SubscriptionID: a.SubscriptionID, Seq: store.EventSeq(a.ID), StartedAt: now,
				Endpoint: endpoint, JWS: rs256Token(&e, issuer, endpoint, sig), Outcome: store.Delivered, StatusCode: http.StatusNoContent,
				Headers: []store.Header{{Name: "Date", Value: now.Format(http.TimeFormat)}}, Duration: time.Millisecond})
		}
	}
	var probe store.Event
	if err := db.bolt.View(func(tx *bbolt.Tx) error {
		return getEvent(db.refs(tx), results[0].SubscriptionID, results[0].Seq, &probe)
	}); err != nil {
		b.Fatal(err)
	}
	probe.JWS = results[0].JWS
	if _, _, _, ok := splitToken(&probe); !ok {
		b.Fatal("the tokens do not rebuild from their events: the bench would measure whole tokens")
	}
	b.ReportAllocs()
	b.ResetTimer()
	s0 := db.bolt.Stats().TxStats
	for i := 0; i < b.N; i += 64 {
		if err := db.RecordAttempts(results[i:min(i+64, b.N)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s1 := db.bolt.Stats().TxStats
	commits := float64((b.N + 63) / 64)
	b.ReportMetric(float64(s1.GetWrite()-s0.GetWrite())/commits, "pages/commit")
	b.ReportMetric(float64(s1.GetSpill()-s0.GetSpill())/commits/1e3, "spill-µs/commit")
}
