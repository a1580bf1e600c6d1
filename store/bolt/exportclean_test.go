package bolt

import (
	"errors"
	"hookd/store"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestExportJanitorQueries(t *testing.T) {
	db, clk := openClockDB(t)
	s := disabledSub(t, db, uuid.New())
	addFailures(t, db, s, 3)
	done, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	exportNow(t, db, done)
	addFailures(t, db, s, 1)
	canceled, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CancelExport(s.CustomerID, s.ID, canceled.ID); err != nil {
		t.Fatal(err)
	}
	active, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)
	if _, err := db.CreateExport(s.CustomerID, uuid.New(), "", store.ScopeSubscription, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown subscription: got %v, want ErrNotFound", err)
	}

	byID, err := db.ExportsByID([]uuid.UUID{done.ID, canceled.ID, uuid.New()})
	if err != nil {
		t.Fatal(err)
	}
	if len(byID) != 2 || byID[done.ID].Key != "key/"+done.ID.String() || byID[canceled.ID].State != store.ExportCanceled {
		t.Errorf("got %v, want the completed and the canceled job", byID)
	}

	expired, err := db.ExpiredExports(clk.now().Add(-30*time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	gotIDs := []uuid.UUID{}
	for _, j := range expired {
		gotIDs = append(gotIDs, j.ID)
	}
	if len(expired) != 2 || !slices.Contains(gotIDs, done.ID) || !slices.Contains(gotIDs, canceled.ID) {
		t.Fatalf("got %d expired jobs, want the completed and the canceled one", len(expired))
	}
	if limited, _ := db.ExpiredExports(clk.now(), 1); len(limited) != 1 {
		t.Errorf("with limit 1: got %d jobs", len(limited))
	}
	if n, err := db.DeleteExports([]uuid.UUID{done.ID, canceled.ID, uuid.New()}); err != nil || n != 2 {
		t.Fatalf("DeleteExports: got %d, %v; want 2", n, err)
	}
	if list, _ := db.Exports(s.CustomerID, s.ID, time.Time{}); len(list) != 1 || list[0].ID != active.ID {
		t.Errorf("after the delete: got %d jobs, want the active one", len(list))
	}
	// The watermark stays: deleting a job does not make its events
	// exportable again. The one exportable event is the active job's.
	if n := exportable(t, db, s); n != 1 {
		t.Errorf("got %d exportable, want 1", n)
	}

	// A deleted subscription: events first, then jobs, then the tombstone.
	if err := db.DeleteSubscription(s.CustomerID, s.ID); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.DropTombstone(s.ID); err != nil || ok {
		t.Errorf("drop with events left: got %v, %v; want false", ok, err)
	}
	for {
		_, n, err := db.PurgeDeleted(s.ID, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if ok, _ := db.DropTombstone(s.ID); ok {
		t.Error("drop with export jobs left: got true, want false")
	}
	jobs, err := db.DeletedSubscriptionExports(s.ID, 10)
	if err != nil || len(jobs) != 1 || jobs[0].ID != active.ID {
		t.Fatalf("got jobs %v, %v; want the active job", jobs, err)
	}
	if n, err := db.DeleteExports([]uuid.UUID{active.ID}); err != nil || n != 1 {
		t.Fatalf("DeleteExports: got %d, %v", n, err)
	}
	if list, _ := db.ActiveExports(); len(list) != 0 {
		t.Errorf("got %d active jobs, want 0", len(list))
	}
	if ok, err := db.DropTombstone(s.ID); err != nil || !ok {
		t.Errorf("drop: got %v, %v; want true", ok, err)
	}
	if stones, _ := db.Tombstones(); len(stones) != 0 {
		t.Errorf("got tombstones %v, want none", stones)
	}
}
