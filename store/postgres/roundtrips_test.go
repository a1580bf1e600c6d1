package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hookd/store"
)

// roundTrips counts what the store sends to the server: each query, batch
// and COPY (BEGIN and COMMIT are queries of their own unless a batch
// carries them). The preparation of a statement the first time a
// connection runs it is not counted, nor are the LISTEN statements a
// member's notification connection sends when it starts, whenever that
// is: they are not part of what is measured.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, q pgx.TraceQueryStartData) context.Context {
	if !strings.HasPrefix(strings.ToLower(q.SQL), "listen ") {
		r.n.Add(1)
	}
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (r *roundTrips) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// TestRoundTripsOfDelivery: the two statements of the delivery path that
// every attempt pays for go to the server in a fixed, small number of
// round trips, whatever the number of events: a group of outcomes in
// three (its reads with the BEGIN, its writes with the counters', the
// COMMIT), a lane's read of its due events in two (its check with the due
// order, the events). On a cluster every node commits its own groups, so
// that each round trip of a group is paid more often per delivery.
func TestRoundTripsOfDelivery(t *testing.T) {
	rt := &roundTrips{}
	db := openTestWith(t, Options{tracer: rt})
	subs := newSubs(t, db, 2)
	start := db.Now().Add(-time.Hour)
	var seqs [2][]uint64
	for i, sub := range subs {
		seqs[i] = dueSeqs(t, db, sub, start, 30)
	}
	outcomes := func(from, to int) []store.AttemptResult {
		var rs []store.AttemptResult
		for i, sub := range subs {
			for _, s := range seqs[i][from:to] {
				rs = append(rs, store.AttemptResult{SubscriptionID: sub, Seq: s, StartedAt: db.Now(), Outcome: store.Delivered, StatusCode: 204, Endpoint: "https://example.com"})
			}
		}
		return rs
	}
	// The first group prepares the statements on the connection.
	if err := db.RecordAttempts(outcomes(0, 2)); err != nil {
		t.Fatal(err)
	}
	from := 2
	for _, n := range []int{1, 20} {
		rt.n.Store(0)
		if err := db.RecordAttempts(outcomes(from, from+n)); err != nil {
			t.Fatal(err)
		}
		if got := rt.n.Load(); got != 3 {
			t.Errorf("%d outcomes of 2 subscriptions: %d round trips, want 3", 2*n, got)
		}
		from += n
	}
	var waiting uint64
	if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE due_at IS NOT NULL`).Scan(&waiting); err != nil {
		t.Fatal(err)
	}
	if want := uint64(2 * (30 - 23)); waiting != want {
		t.Fatalf("%d events still due, want %d: the outcomes were not all stored", waiting, want)
	}

	_, c := laneMember(t, db, nil)
	// The first read takes the lane and prepares the statements.
	if _, _, err := c.DueEvents(subs[0], db.Now(), 1, nil); err != nil {
		t.Fatal(err)
	}
	rt.n.Store(0)
	skip := map[uint64]bool{seqs[0][23]: true}
	evs, _, err := c.DueEvents(subs[0], db.Now(), 3, func(s uint64) bool { return skip[s] })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqsOf(evs), seqs[0][24:27]; !slices.Equal(got, want) {
		t.Fatalf("due read: %v, want %v", got, want)
	}
	if got := rt.n.Load(); got != 2 {
		t.Errorf("a lane's due read: %d round trips, want 2", got)
	}
}

// TestRoundTripsOfARequestsChecks: the checks every API request makes (its
// token, and the intake's customer) are one statement and one round trip
// each, outside any transaction.
func TestRoundTripsOfARequestsChecks(t *testing.T) {
	rt := &roundTrips{}
	db := openTestWith(t, Options{tracer: rt})
	customer, client := uuid.New(), uuid.New()
	key := func(id string) store.StoredKey { return store.StoredKey{ID: id, DER: []byte(id)} }
	if _, err := db.CreateClient(customer, client, []byte("hash"), func() (store.KeySet, error) {
		return store.KeySet{KeyTriple: store.KeyTriple{Previous: key("p"), Current: key("c"), Next: key("n")}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	want := store.Token{CustomerID: customer, ClientID: client, Scope: "s", ExpiresAt: db.Now().Add(time.Hour).Truncate(time.Microsecond)}
	if err := db.PutToken(store.HashSecret("t"), want); err != nil {
		t.Fatal(err)
	}
	// The first calls prepare the statements on the connection.
	for range 2 {
		rt.n.Store(0)
		got, err := db.LookupToken(store.HashSecret("t"))
		if err == nil && got.ExpiresAt.Equal(want.ExpiresAt) {
			got.ExpiresAt = want.ExpiresAt
		}
		if err != nil || got != want {
			t.Fatalf("LookupToken: %+v, %v; want %+v", got, err, want)
		}
		if n := rt.n.Load(); n != 1 {
			t.Errorf("LookupToken: %d round trips, want 1", n)
		}
		if _, err := db.LookupToken(store.HashSecret("unknown")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LookupToken of an unknown token: %v, want ErrNotFound", err)
		}
		rt.n.Store(0)
		for _, c := range []struct {
			id   uuid.UUID
			want bool
		}{{customer, true}, {uuid.New(), false}} {
			if ok, err := db.CustomerExists(c.id); err != nil || ok != c.want {
				t.Errorf("CustomerExists: %v, %v; want %v", ok, err, c.want)
			}
		}
		if n := rt.n.Load(); n != 2 {
			t.Errorf("two CustomerExists: %d round trips, want 2", n)
		}
	}
}

// TestRoundTripsOfADueNote: the notification of new due events to the
// other nodes is one statement, one round trip (TestNotifications shows
// that it arrives).
func TestRoundTripsOfADueNote(t *testing.T) {
	rt := &roundTrips{}
	db := openTestWith(t, Options{tracer: rt})
	n := &dueNotes{db: db, subs: map[uuid.UUID]bool{}}
	for i := range 2 { // the first prepares the statement on the connection
		n.subs[uuid.New()] = true
		rt.n.Store(0)
		n.send()
		if got := rt.n.Load(); got != 1 {
			t.Errorf("note %d: %d round trips, want 1", i, got)
		}
	}
}
