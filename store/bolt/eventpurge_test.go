package bolt

import (
	"errors"
	"hookd/store"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestPurgeExpiredEvents(t *testing.T) {
	db, clk := openEventsDB(t)
	cust := uuid.New()
	a, b := addEvSub(t, db, cust, "a"), addEvSub(t, db, cust, "b")
	old := addN(t, db, 5, a, b)
	failAll(t, db, old[:4])
	clk.Add(8 * 24 * time.Hour)
	fresh := addN(t, db, 2, a)
	cutoff := clk.Now().Add(-7 * 24 * time.Hour)

	total := 0
	for {
		n, err := db.PurgeExpiredEvents(cutoff, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n > 3 {
			t.Fatalf("got a batch of %d, want at most 3", n)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 10 {
		t.Fatalf("got %d purged, want 10", total)
	}
	evs, n, _ := db.Events(cust, a.ID, store.EventQuery{Limit: 10})
	if n != 2 || evs[0].ID != fresh[0].ID {
		t.Errorf("got %d events left, want the 2 fresh ones", n)
	}
	checkSummary(t, db, a, 0, 2, 0, 0)
	checkSummary(t, db, b, 0, 0, 0, 0)
	if due, _ := db.DueSubscriptions(); len(due) != 1 {
		t.Errorf("got due %v, want only a", due)
	}
}

func TestDeletedSubscriptionPurge(t *testing.T) {
	db, _ := openEventsDB(t)
	cust := uuid.New()
	s, keep := addEvSub(t, db, cust, "gone"), addEvSub(t, db, cust, "keep")
	added := addN(t, db, 6, s, keep)
	var mine []store.Added
	for _, a := range added {
		if a.SubscriptionID == s.ID {
			mine = append(mine, a)
		}
	}
	failAll(t, db, mine[:3])
	job := fakeExport(t, db, s, store.ExportCompleted)
	if err := db.DeleteSubscription(cust, s.ID); err != nil {
		t.Fatal(err)
	}
	// Late writes for the deleted subscription change nothing.
	if got, _ := db.AddEvents([]store.NewEvent{{Type: "entityCreated"}}, []store.Delivery{{SubscriptionID: s.ID, Event: 0}}); len(got) != 0 {
		t.Errorf("got %d added to a deleted subscription, want 0", len(got))
	}
	mustRecord(t, db, attempt(db, mine[4], store.Delivered, 200, time.Time{}))

	if tombs, _ := db.Tombstones(); len(tombs) != 1 || tombs[0] != s.ID {
		t.Fatalf("got tombstones %v, want [%s]", tombs, s.ID)
	}
	purged := 0
	for {
		events, n, err := db.PurgeDeleted(s.ID, 4)
		if err != nil {
			t.Fatal(err)
		}
		if events > n {
			t.Fatalf("got %d events in a batch of %d keys", events, n)
		}
		purged += events
		if n == 0 {
			break
		}
	}
	if purged != len(mine) {
		t.Errorf("events purged: got %d, want %d (index entries do not count)", purged, len(mine))
	}
	// The export job still exists: the tombstone stays.
	if ok, err := db.DropTombstone(s.ID); ok || err != nil {
		t.Fatalf("with an export job left: got %v %v, want false nil", ok, err)
	}
	jobs, err := db.DeletedSubscriptionExports(s.ID, 10)
	if err != nil || len(jobs) != 1 || jobs[0].ID != job.ID {
		t.Fatalf("got jobs %v %v, want [%s]", jobs, err, job.ID)
	}
	if _, err := db.DeleteExports([]uuid.UUID{job.ID}); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.DropTombstone(s.ID); !ok || err != nil {
		t.Fatalf("got %v %v, want true nil", ok, err)
	}
	if tombs, _ := db.Tombstones(); len(tombs) != 0 {
		t.Errorf("got tombstones %v, want none", tombs)
	}
	if _, n, _ := db.Events(cust, keep.ID, store.EventQuery{Limit: 1}); n != 6 {
		t.Errorf("got %d events of the other subscription, want 6", n)
	}
	if _, err := db.SubscriptionByID(s.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SubscriptionByID of a deleted one: got %v, want ErrNotFound", err)
	}
	if got, err := db.SubscriptionByID(keep.ID); err != nil || got.Title != "keep" {
		t.Errorf("SubscriptionByID: got %+v %v, want keep", got, err)
	}
}
