package bolt

import (
	"errors"
	"hookd/store"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// holdCommit starts a write that blocks the commit loop until the returned
// function is called.
func holdCommit(t *testing.T, db *DB) (release func()) {
	t.Helper()
	held, unblock := make(chan struct{}), make(chan struct{})
	go func() {
		_ = db.group.do(func(*bbolt.Tx) error {
			select {
			case <-held:
			default:
				close(held)
			}
			<-unblock
			return nil
		})
	}()
	<-held
	return func() { close(unblock) }
}

// waitQueued waits until n writes wait for the commit loop.
func waitQueued(t *testing.T, db *DB, n int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); db.group.waiting.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("got %d writes waiting, want %d", db.group.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAddEventsShareCommits: the intake requests that arrive while a
// commit is under way are stored together by the next one.
func TestAddEventsShareCommits(t *testing.T) {
	db, _ := openEventsDB(t)
	s := addEvSub(t, db, uuid.New(), "s")
	release := holdCommit(t, db)
	before := db.group.commits.Load()

	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.AddEvents([]store.NewEvent{{Type: "entityCreated", Toe: int64(i), Payload: []byte(`{}`)}}, []store.Delivery{{SubscriptionID: s.ID}})
			errs <- err
		}()
	}
	waitQueued(t, db, callers+1) // the held write and the callers
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("add events: %v", err)
		}
	}
	// Mostly 1; a caller still on its way to the queue at the release
	// takes a later one.
	if got := db.group.commits.Load() - before; got > 5 {
		t.Errorf("commits for %d requests that waited together: got %d, want at most 5", callers, got)
	}
	if _, n, err := db.Events(s.CustomerID, s.ID, store.EventQuery{Limit: 1}); err != nil || n != callers {
		t.Errorf("events stored: got %d (%v), want %d", n, err, callers)
	}
}

// TestGroupCommitFailureStaysWithItsCaller: a write that fails in a group
// fails alone; the others of its group are stored.
func TestGroupCommitFailureStaysWithItsCaller(t *testing.T) {
	db, _ := openEventsDB(t)
	s := addEvSub(t, db, uuid.New(), "s")
	release := holdCommit(t, db)
	boom := errors.New("boom")

	var wg sync.WaitGroup
	var failErr error
	okErrs := make([]error, 5)
	wg.Add(1)
	go func() {
		defer wg.Done()
		failErr = db.group.do(func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bucketEvents).Put([]byte("half-done"), []byte("x")); err != nil {
				return err
			}
			return boom
		})
	}()
	for i := range okErrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, okErrs[i] = db.AddEvents([]store.NewEvent{{Type: "entityCreated", Payload: []byte(`{}`)}}, []store.Delivery{{SubscriptionID: s.ID}})
		}()
	}
	waitQueued(t, db, 7)
	release()
	wg.Wait()

	if !errors.Is(failErr, boom) {
		t.Errorf("failing write: got %v, want its own error", failErr)
	}
	for i, err := range okErrs {
		if err != nil {
			t.Errorf("write %d of the same group: got %v, want nil", i, err)
		}
	}
	if _, n, err := db.Events(s.CustomerID, s.ID, store.EventQuery{Limit: 1}); err != nil || n != len(okErrs) {
		t.Errorf("events stored: got %d (%v), want %d", n, err, len(okErrs))
	}
	_ = db.bolt.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketEvents).Get([]byte("half-done")) != nil {
			t.Errorf("the failed write's change was kept")
		}
		return nil
	})
}

// TestGroupCommitAfterClose: a write after Close fails instead of waiting.
func TestGroupCommitAfterClose(t *testing.T) {
	db, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.PutToken([]byte("h"), store.Token{}); !errors.Is(err, bbolt.ErrDatabaseNotOpen) {
		t.Errorf("PutToken after Close: got %v, want bbolt.ErrDatabaseNotOpen", err)
	}
}
