package bolt

import (
	"hookd/store"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// spaceUse is how much of the file the store uses.
type spaceUse struct {
	highWater int64 // bytes up to the last page in use (tx.Size)
	inuse     int   // bytes of the events bucket's leaves in use
}

func measureSpace(t *testing.T, db *DB) spaceUse {
	t.Helper()
	var u spaceUse
	_ = db.bolt.View(func(tx *bbolt.Tx) error {
		u.highWater = tx.Size()
		u.inuse = tx.Bucket(bucketEvents).Stats().LeafInuse
		return nil
	})
	return u
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
		added = append(added, a...)
	}
	// An RS256 token of this event: header, claims and signature.
	token := strings.Repeat("h", 120) + "." + strings.Repeat("p", 560) + "." + strings.Repeat("s", 342)
	record := func(o store.Outcome) {
		t.Helper()
		for i := 0; i < n; i += 64 { // the dispatcher stores outcomes in groups
			var rs []store.AttemptResult
			for _, a := range added[i:min(i+64, n)] {
				r := store.AttemptResult{SubscriptionID: a.SubscriptionID, Seq: store.EventSeq(a.ID), StartedAt: clk.Now(), JWS: token, Outcome: o,
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
		t.Errorf("got +%d bytes per first attempt (a %d-byte token), want at most FirstAttemptBytes, %d", first, len(token), FirstAttemptBytes)
	}
	for i := 2; i < len(u); i++ {
		if later := (u[i].highWater - u[i-1].highWater) / n; later > 64 {
			t.Errorf("attempt %d: got +%d bytes per attempt, want at most 64", i, later)
		}
	}
}
