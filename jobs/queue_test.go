package jobs

import (
	"context"
	"hookd/store/bolt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"hookd/blobsink"
	"hookd/store"
)

// subOf creates a disabled subscription of customer with n failed events.
func subOf(t testing.TB, db *bolt.DB, customer uuid.UUID, n int) store.Subscription {
	t.Helper()
	now := db.Now()
	s := store.Subscription{ID: uuid.New(), CustomerID: customer, Title: "sub " + uuid.NewString()[:8],
		Endpoint: "https://listener.example.com/hook", Events: []string{"entityCreated", "entityUpdated"},
		CreatedAt: now, UpdatedAt: now}
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatal(err)
	}
	addFailed(t, db, s, n)
	return s
}

// TestExportQueueWaitsInTurn: with one writer, a job of customer B waits
// in processing while customer A's job writes (neither is refused), and is
// written after it. The writer is held inside A's write by a hook; the
// exporter runs in a synctest bubble, so "everything waits" is observed
// with synctest.Wait, not with sleeps.
func TestExportQueueWaitsInTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db, clk := openStore(t)
		b, err := blobsink.Open(t.Context(), "mem://")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		sa := subOf(t, db, uuid.New(), 20)
		sb := subOf(t, db, uuid.New(), 5)
		ja, err := db.CreateExport(sa.CustomerID, sa.ID, "", store.DefaultExportScope, 0)
		if err != nil {
			t.Fatal(err)
		}
		clk.add(time.Second)
		jb, err := db.CreateExport(sb.CustomerID, sb.ID, "", store.DefaultExportScope, 0)
		if err != nil {
			t.Fatalf("customer B while A's job is active: got %v, want a job", err)
		}

		ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Log: zerolog.Nop(), PublicURL: testPublicURL, Writers: 1})
		release := make(chan struct{})
		var order []uuid.UUID
		ex.beforeWrite = func(_ context.Context, j store.ExportJob) {
			order = append(order, j.ID)
			if j.ID == ja.ID {
				<-release
			}
		}
		ex.Start(t.Context())
		defer ex.Close()
		released := false
		defer func() { // a failed check must not leave the writer held
			if !released {
				close(release)
			}
		}()
		synctest.Wait() // the only writer is held in A's write

		state := func(id uuid.UUID) store.ExportState {
			t.Helper()
			j, err := db.ExportByID(id)
			if err != nil {
				t.Fatal(err)
			}
			return j.State
		}
		if a, b := state(ja.ID), state(jb.ID); a != store.ExportWriting || b != store.ExportProcessing {
			t.Fatalf("while A writes: got A %s and B %s, want writing and processing", a, b)
		}
		// B's job can be canceled while it waits; a new one takes its place.
		if _, err := db.CancelExport(sb.CustomerID, sb.ID, jb.ID); err != nil {
			t.Fatalf("cancel the waiting job: %v", err)
		}
		jb2, err := db.CreateExport(sb.CustomerID, sb.ID, "", store.DefaultExportScope, 0)
		if err != nil {
			t.Fatal(err)
		}
		ex.Enqueue()
		synctest.Wait()
		if got := state(jb2.ID); got != store.ExportProcessing {
			t.Fatalf("B's new job while A writes: got %s, want processing", got)
		}

		close(release)
		released = true
		synctest.Wait()
		if a, b := state(ja.ID), state(jb2.ID); a != store.ExportCompleted || b != store.ExportCompleted {
			t.Fatalf("after A's write: got A %s and B %s, want both completed", a, b)
		}
		if want := []uuid.UUID{ja.ID, jb2.ID}; !slices.Equal(order, want) {
			t.Errorf("write order: got %v, want A then B %v", order, want)
		}
	})
}

// TestExportQueueRoundRobin: one writer serves customers in turn. A has
// three subscriptions with a job each (the subscription scope allows it),
// B and C one each, created in the order A1 A2 A3 B1 C1: they are written
// A1 B1 C1 A2 A3. A customer that comes back after its jobs ended joins
// the end of the round instead of going first.
func TestExportQueueRoundRobin(t *testing.T) {
	db, clk := openStore(t)
	b, err := blobsink.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, bc, c := uuid.New(), uuid.New(), uuid.New()
	subs := []store.Subscription{subOf(t, db, a, 3), subOf(t, db, a, 3), subOf(t, db, a, 3), subOf(t, db, bc, 3), subOf(t, db, c, 3)}
	var ids []uuid.UUID
	for _, s := range subs {
		j, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0)
		if err != nil {
			t.Fatalf("job %d: %v", len(ids), err)
		}
		ids = append(ids, j.ID)
		clk.add(time.Second)
	}
	ex := NewExporter(ExporterOptions{DB: db, Bucket: b, Log: zerolog.Nop(), PublicURL: testPublicURL, Writers: 1})
	var order []uuid.UUID
	ex.beforeWrite = func(_ context.Context, j store.ExportJob) { order = append(order, j.ID) }
	if n, err := ex.RunOnce(t.Context()); err != nil || n != 5 {
		t.Fatalf("RunOnce: got %d, %v; want 5 jobs", n, err)
	}
	if want := []uuid.UUID{ids[0], ids[3], ids[4], ids[1], ids[2]}; !slices.Equal(order, want) {
		t.Fatalf("write order: got %v, want A1 B1 C1 A2 A3 %v", order, want)
	}

	// A customer that comes back joins the end of the round. A has two
	// jobs and B one; while B's job writes, C (whose jobs had all ended)
	// starts one: it goes after A's second job, though A was served
	// already in this round.
	order = nil
	for _, s := range []store.Subscription{subs[0], subs[1], subs[3], subs[4]} {
		addFailed(t, db, s, 1)
	}
	var next []uuid.UUID
	for _, s := range []store.Subscription{subs[0], subs[1], subs[3]} {
		j, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeSubscription, 0)
		if err != nil {
			t.Fatal(err)
		}
		next = append(next, j.ID)
		clk.add(time.Second)
	}
	var late uuid.UUID
	ex.beforeWrite = func(_ context.Context, j store.ExportJob) {
		order = append(order, j.ID)
		if j.ID == next[2] {
			cj, err := db.CreateExport(c, subs[4].ID, "", store.ScopeSubscription, 0)
			if err != nil {
				t.Error(err)
			}
			late = cj.ID
		}
	}
	if n, err := ex.RunOnce(t.Context()); err != nil || n != 4 {
		t.Fatalf("RunOnce: got %d, %v; want 4 jobs", n, err)
	}
	if want := []uuid.UUID{next[0], next[2], next[1], late}; !slices.Equal(order, want) {
		t.Errorf("second round: got %v, want A1 B1 A2 C1 %v", order, want)
	}
}
