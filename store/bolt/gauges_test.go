package bolt

import (
	"hookd/store"
	"testing"

	"github.com/google/uuid"
)

func TestExportStates(t *testing.T) {
	db, _ := openClockDB(t)
	got, err := db.ExportStates()
	if err != nil || len(got) != 0 {
		t.Fatalf("empty store: got %v, %v, want no jobs", got, err)
	}
	s := disabledSub(t, db, uuid.New())
	addFailures(t, db, s, 2)
	first, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CancelExport(s.CustomerID, s.ID, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0); err != nil {
		t.Fatal(err)
	}
	got, err = db.ExportStates()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[store.ExportCanceled] != 1 || got[store.ExportProcessing] != 1 {
		t.Errorf("got %v, want one canceled and one processing", got)
	}
}
