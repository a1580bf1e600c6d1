package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"hookd/store"
	"hookd/store/pgtest"
)

// BenchmarkDrain drains a backlog of b.N deliveries over 4 subscriptions
// as the dispatcher does (each subscription's lane keeps up to 32
// attempts in flight, reads what is due whenever some ended, records
// their outcomes 4 at a time) and reports the database server's CPU per
// delivery: on the store alone (one node), and through the claims of a
// node holding the lanes.
func BenchmarkDrain(b *testing.B) {
	for _, mode := range []string{"store", "lanes"} {
		b.Run(mode, func(b *testing.B) {
			pg := pgtest.New(b)
			dsn, err := pg.NewDatabase(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			db, err := Open(context.Background(), dsn, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			subs := newSubs(b, db, 4)
			per := b.N/len(subs) + 1
			past := db.Now().Add(-time.Hour)
			for range per {
				insertDue(b, db, past, subs...)
			}
			due := db.DueEvents
			if mode == "lanes" {
				m, c := laneMember(b, db, nil)
				if err := m.beat(); err != nil || len(c.Held()) != len(subs) {
					b.Fatalf("the node holds lanes %v, %v; want all", c.Held(), err)
				}
				due = c.DueEvents
			}
			cpu0, _ := pg.CPUTime()
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, sub := range subs {
				wg.Go(func() {
					inflight := map[uint64]bool{}
					var queue []uint64
					for {
						evs, _, err := due(sub, db.Now(), 32-len(queue), func(s uint64) bool { return inflight[s] })
						if err != nil {
							b.Error(err)
							return
						}
						for _, e := range evs {
							inflight[e.Seq] = true
							queue = append(queue, e.Seq)
						}
						if len(queue) == 0 {
							return
						}
						n := min(4, len(queue))
						var rs []store.AttemptResult
						for _, s := range queue[:n] {
							rs = append(rs, store.AttemptResult{SubscriptionID: sub, Seq: s, StartedAt: db.Now(), Outcome: store.Delivered, StatusCode: 200, Endpoint: "https://example.com"})
						}
						if err := db.RecordAttempts(rs); err != nil {
							b.Error(err)
							return
						}
						for _, s := range queue[:n] {
							delete(inflight, s)
						}
						queue = queue[n:]
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			cpu1, _ := pg.CPUTime()
			b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(per*len(subs)), "db-µs/delivery")
		})
	}
}
