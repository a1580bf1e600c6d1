package delivery

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"hookd/store"
	"hookd/store/bolt"
)

// BenchmarkDispatch delivers b.N events through a running dispatcher on a
// real store (synced, as hookd runs it) to 4 loopback listeners answering
// 204, with EdDSA subscriptions, so that the signature is cheap and the
// rest of a delivery shows: ns/op is the wall time per delivery on all
// CPUs, allocs/op the allocations, and cpu-µs/op the process's CPU per
// delivery (the listeners' included). Profile it with -cpuprofile.
func BenchmarkDispatch(b *testing.B) {
	for _, alg := range []string{store.AlgEdDSA, store.AlgRS256} {
		b.Run(alg, func(b *testing.B) { benchmarkDispatch(b, alg) })
	}
}

func benchmarkDispatch(b *testing.B, alg string) {
	const subs = 4
	db, err := bolt.Open(b.TempDir(), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	customer := uuid.New()
	if _, err := db.CreateClient(customer, uuid.New(), store.HashSecret("s"), NewKeySet); err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	var want int64
	listen := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		if got.Add(1) == atomic.LoadInt64(&want) {
			close(done)
		}
	})
	var ids []uuid.UUID
	now := db.Now()
	for i := range subs {
		// A listener each, as subscribers have: the attempts in flight to
		// one stay within the client's idle connections per host.
		srv := httptest.NewServer(listen)
		defer srv.Close()
		s := store.Subscription{ID: uuid.New(), CustomerID: customer, Title: "bench " + strconv.Itoa(i), Endpoint: srv.URL + "/hook",
			Events: []string{"entityUpdated"}, Enabled: true, SigningAlg: alg, CreatedAt: now, UpdatedAt: now}
		if err := db.CreateSubscription(s, 0); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	perSub := (b.N + subs - 1) / subs
	atomic.StoreInt64(&want, int64(perSub*subs))
	for from := 0; from < perSub; from += 1000 {
		var evs []store.NewEvent
		var ds []store.Delivery
		for i := from; i < min(from+1000, perSub); i++ {
			evs = append(evs, store.NewEvent{Type: "entityUpdated", Txn: uuid.NewString(), Toe: 1700000000 + int64(i),
				Payload: []byte(`{"entityType":"user","sub":"` + uuid.NewString() + `","globalSub":"` + uuid.NewString() + `","changedAttributes":["mail","givenName"]}`)})
			for _, id := range ids {
				ds = append(ds, store.Delivery{SubscriptionID: id, Event: len(evs) - 1})
			}
		}
		if _, err := db.AddEvents(evs, ds); err != nil {
			b.Fatal(err)
		}
	}
	d := NewDispatcher(DispatcherOptions{
		DB: db, Client: NewClient(ClientOptions{Dev: true}), PublicURL: "https://hooks.example",
		Schedule: fastSchedule, Grace: 5 * time.Second, Log: zerolog.Nop(),
	})
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ReportAllocs()
	b.ResetTimer()
	d.Start(context.Background())
	select {
	case <-done:
	case <-time.After(10*time.Minute + time.Duration(b.N)*time.Millisecond):
		b.Fatalf("%d of %d deliveries", got.Load(), want)
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) + syscall.TimevalToNsec(ru1.Stime) - syscall.TimevalToNsec(ru0.Utime) - syscall.TimevalToNsec(ru0.Stime))
	b.ReportMetric(float64(cpu.Microseconds())/float64(want), "cpu-µs/op")
	b.ReportMetric(testutil.ToFloat64(d.m.rounds)/float64(want), "rounds/op")
	if h, ok := d.m.perCommit.(prometheus.Metric); ok {
		var pb dto.Metric
		_ = h.Write(&pb)
		b.ReportMetric(float64(want)/float64(pb.GetHistogram().GetSampleCount()), "outcomes/commit")
	}
	d.Close()
}
