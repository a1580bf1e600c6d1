package bolt

import (
	"crypto/rand"
	"hookd/store"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// spaceUse is how much of the file the store uses.
type spaceUse struct {
	highWater int64 // bytes up to the last page in use (tx.Size)
	inuse     int   // bytes of the events and due buckets' leaves in use
}

func measureSpace(t *testing.T, db *DB) spaceUse {
	t.Helper()
	var u spaceUse
	_ = db.bolt.View(func(tx *bbolt.Tx) error {
		u.highWater = tx.Size()
		u.inuse = tx.Bucket(bucketEvents).Stats().LeafInuse + tx.Bucket(bucketDue).Stats().LeafInuse
		return nil
	})
	return u
}

// rs256Token returns a token of e's claims as hookd signs it with RS256:
// the header of a key, the claims with issuer and the endpoint as
// audience, 256 bytes of signature.
func rs256Token(e *store.Event, issuer, endpoint string, sig []byte) string {
	header := b64.EncodeToString([]byte(`{"alg":"RS256","kid":"Q8xk2lW0x4mBp1d3vS7nJd2k0b5cQm8yT4wZr9aHs1E","typ":"secevent+jwt"}`))
	return header + "." + b64.EncodeToString(store.AppendEventClaims(nil, e, issuer, endpoint)) + "." + b64.EncodeToString(sig)
}

// Recording outcomes grows the store by a small constant per attempt: the
// first stores the token sent (the event resource shows it) and two
// history rows, later ones two history rows, and the pages the intake
// appends are filled, not left half empty. The figures are logged.
func TestRecordingGrowsTheStoreByAConstant(t *testing.T) {
	db, clk := openEventsDB(t)
	subs := []store.Subscription{addEvSub(t, db, uuid.New(), "a"), addEvSub(t, db, uuid.New(), "b")}
	const n, perRequest = 6000, 500
	payload := []byte(`{"captureApplicationId":"app1","captureClientId":"cl1","entityType":"user","globalSub":"capture-v1://x/` + strings.Repeat("y", 40) + `","sub":"` + strings.Repeat("z", 36) + `"}`)
	var added []store.Added
	var sent []store.Event // what each added event's token is made of
	for len(added) < n {
		var evs []store.NewEvent
		var ds []store.Delivery
		for j := range perRequest / len(subs) {
			evs = append(evs, store.NewEvent{Type: "entityCreated", Txn: uuid.NewString(), Toe: 1700000000, Payload: payload})
			for _, s := range subs {
				ds = append(ds, store.Delivery{SubscriptionID: s.ID, Event: j})
			}
		}
		a, err := db.AddEvents(evs, ds)
		if err != nil {
			t.Fatal(err)
		}
		for k, ad := range a {
			ne := evs[ds[k].Event]
			sent = append(sent, store.Event{ID: ad.ID, CreatedAt: clk.Now(), Type: ne.Type, Txn: ne.Txn, Toe: ne.Toe, Payload: ne.Payload})
		}
		added = append(added, a...)
	}
	endpoints := map[uuid.UUID]string{subs[0].ID: subs[0].Endpoint, subs[1].ID: subs[1].Endpoint}
	issuer := "https://hooks.example.com/" + uuid.NewString() + "/webhooks"
	sig := make([]byte, 256)
	record := func(o store.Outcome) {
		t.Helper()
		for i := 0; i < n; i += 64 { // the dispatcher stores outcomes in groups
			var rs []store.AttemptResult
			for k, a := range added[i:min(i+64, n)] {
				_, _ = rand.Read(sig)
				token := rs256Token(&sent[i+k], issuer, endpoints[a.SubscriptionID], sig)
				r := store.AttemptResult{SubscriptionID: a.SubscriptionID, Seq: store.EventSeq(a.ID), StartedAt: clk.Now(), Endpoint: endpoints[a.SubscriptionID], JWS: token, Outcome: o,
					StatusCode: 500, Headers: []store.Header{{Name: "Content-Type", Value: "text/plain"}}, Reason: "HTTP 500"}
				if o == store.Retry {
					r.RetryAt = clk.Now().Add(time.Second)
				}
				rs = append(rs, r)
			}
			if err := db.RecordAttempts(rs); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, err := db.PendingGrowth(); err != nil || got != n*FirstAttemptBytes {
		t.Errorf("PendingGrowth before the first attempts: got %d, %v, want %d", got, err, n*FirstAttemptBytes)
	}
	u := []spaceUse{measureSpace(t, db)}
	for _, o := range []store.Outcome{store.Retry, store.Retry, store.Delivered} {
		record(o)
		u = append(u, measureSpace(t, db))
	}
	if got, err := db.PendingGrowth(); err != nil || got != 0 {
		t.Errorf("PendingGrowth after the attempts: got %d, %v, want 0", got, err)
	}
	intake := u[0].highWater / n
	data := int64(u[0].inuse / n)
	t.Logf("intake: %d bytes of file per event, %d of them the event record", intake, data)
	for i := 1; i < len(u); i++ {
		t.Logf("attempt %d: +%d bytes of file per attempt, +%d of event data", i, (u[i].highWater-u[i-1].highWater)/n, (u[i].inuse-u[i-1].inuse)/n)
	}
	if intake > data*3/2 {
		t.Errorf("got %d bytes of file per event for a %d-byte record at intake, want at most 1.5 times: the intake's pages are filled", intake, data)
	}
	if first := (u[1].highWater - u[0].highWater) / n; first > FirstAttemptBytes {
		t.Errorf("got +%d bytes per first attempt (an RS256 token), want at most FirstAttemptBytes, %d", first, FirstAttemptBytes)
	}
	// The second attempt also writes the first one's detail (a 500 with
	// headers and no body: kept in the event's response while it was the
	// last attempt), a key of its own in the details bucket; the later
	// ones add to that key.
	const firstDetailBytes = 160
	for i := 2; i < len(u); i++ {
		limit := int64(64)
		if i == 2 {
			limit += firstDetailBytes
		}
		if later := (u[i].highWater - u[i-1].highWater) / n; later > limit {
			t.Errorf("attempt %d: got +%d bytes per attempt, want at most %d", i, later, limit)
		}
	}
}

// TestFullStoreBytesPerEvent fills a store as the bench's full-store
// phase does (bench/fullstore.go), at a smaller scale: events of the
// bench's size added in groups, each delivered at its first attempt with
// an RS256 token and a Date header, one in 20 failed with status 500; the
// file must grow by at most maxBytesPerEvent bytes per event once the
// first warmSteps groups are stored (what a small file holds besides its
// events, the pages freed by the last commit, bbolt's meta pages and the
// other buckets, would weigh on every event of a small fill, not of a
// large one).
func TestFullStoreBytesPerEvent(t *testing.T) {
	const (
		subsN, steps, warmSteps, perStep = 10, 25, 5, 1000
		maxBytesPerEvent                 = 600 // the bound
	)
	db, clk := openEventsDB(t)
	customer := uuid.New()
	var subs []store.Subscription
	for i := range subsN {
		subs = append(subs, addEvSub(t, db, customer, "full-store-listener-"+strconv.Itoa(i)))
	}
	issuer := "https://hooks.example.com/" + customer.String() + "/webhooks"
	sig := make([]byte, 256)
	start := clk.Now()
	var warm spaceUse
	for step := range steps {
		if step == warmSteps {
			warm = measureSpace(t, db)
		}
		at := start.Add(time.Duration(step) * time.Minute)
		clk.set(at)
		var evs []store.NewEvent
		var ds []store.Delivery
		for k := range perStep {
			evs = append(evs, store.NewEvent{Type: "entityUpdated", Txn: uuid.NewString(), Toe: at.Unix(), Payload: benchEventObject()})
			ds = append(ds, store.Delivery{SubscriptionID: subs[k%subsN].ID, Event: k})
		}
		added, err := db.AddEvents(evs, ds)
		if err != nil {
			t.Fatal(err)
		}
		sent := at.Add(50 * time.Millisecond)
		clk.set(sent.Add(20 * time.Millisecond))
		var rs []store.AttemptResult
		for k, a := range added {
			ne := evs[ds[k].Event]
			endpoint := subs[k%subsN].Endpoint
			e := store.Event{ID: a.ID, CreatedAt: at, Type: ne.Type, Txn: ne.Txn, Toe: ne.Toe, Payload: ne.Payload}
			_, _ = rand.Read(sig)
			r := store.AttemptResult{SubscriptionID: a.SubscriptionID, Seq: store.EventSeq(a.ID), StartedAt: sent, Endpoint: endpoint,
				JWS: rs256Token(&e, issuer, endpoint, sig), StatusCode: http.StatusNoContent,
				Headers: []store.Header{{Name: "Date", Value: sent.Format(http.TimeFormat)}}, Outcome: store.Delivered}
			if k%20 == 0 {
				r.StatusCode, r.Outcome, r.Reason, r.Code = http.StatusInternalServerError, store.Failed, "status 500", store.ReasonStatus5xx
				r.Headers = append(r.Headers, store.Header{Name: "Content-Type", Value: "text/plain; charset=utf-8"})
			}
			rs = append(rs, r)
		}
		if err := db.RecordAttempts(rs); err != nil {
			t.Fatal(err)
		}
	}
	n := int64((steps - warmSteps) * perStep)
	u := measureSpace(t, db)
	t.Logf("%d bytes of file per event, %d of them in use by events (the whole file: %d bytes per event)",
		(u.highWater-warm.highWater)/n, int64(u.inuse-warm.inuse)/n, u.highWater/int64(steps*perStep))
	if got := (u.highWater - warm.highWater) / n; got > maxBytesPerEvent {
		t.Errorf("got %d bytes of file per event, want at most %d", got, maxBytesPerEvent)
	}
	// Every event reads back with the token it was sent with.
	list, _, err := db.Events(customer, subs[0].ID, store.EventQuery{Limit: 3})
	if err != nil || len(list) != 3 {
		t.Fatalf("list: %d events, %v", len(list), err)
	}
	for _, e := range list {
		if want := rs256Token(&e, issuer, subs[0].Endpoint, nil); !strings.HasPrefix(e.JWS, want[:strings.LastIndexByte(want, '.')+1]) || len(e.JWS) != len(want)+342 {
			t.Errorf("event %s: got token %q, want header and claims %q and a 256-byte signature", e.ID, e.JWS, want)
		}
	}
}

// benchEventObject is an event object of the bench's shape and size
// (bench/events.go): three identifiers and the members every event has.
func benchEventObject() []byte {
	return []byte(`{"captureApplicationId":"` + uuid.NewString() + `","captureClientId":"identity-admin-ui","entityType":"user","globalSub":"` +
		uuid.NewString() + `","sub":"` + uuid.NewString() + `","attributes":["/profile/email","/profile/name/given"]}`)
}
