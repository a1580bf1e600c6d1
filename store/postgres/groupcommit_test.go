package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
	"hookd/store/pgtest"
)

// holdCommit starts a write that blocks the commit loop until the returned
// function is called.
func holdCommit(t *testing.T, db *DB) (release func()) {
	t.Helper()
	held, unblock := make(chan struct{}), make(chan struct{})
	go func() {
		_ = db.group.do(func(*groupTx) error {
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
	for deadline := time.Now().Add(10 * time.Second); db.group.waiting.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("got %d writes waiting, want %d", db.group.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// intakeOfIDs is an intake of events with the senders' ids ids and no
// deliveries: it records only the ids.
func intakeOfIDs(customer uuid.UUID, ids ...uuid.UUID) store.Intake {
	in := store.Intake{CustomerID: customer}
	for _, id := range ids {
		in.Events = append(in.Events, store.NewEvent{ID: id, Type: "entityCreated", Payload: []byte(`{}`)})
	}
	return in
}

// known reports which of ids the customer's intake already recorded.
func known(t *testing.T, db *DB, customer uuid.UUID, ids ...uuid.UUID) int {
	t.Helper()
	res, err := db.RecordIntake(intakeOfIDs(customer, ids...))
	if err != nil {
		t.Fatalf("record intake: %v", err)
	}
	return len(res.Duplicates)
}

// TestIntakeSharesCommits: the intake requests that arrive while a commit
// is under way are stored together by the next one.
func TestIntakeSharesCommits(t *testing.T) {
	db := openTest(t, nil)
	customer := uuid.New()
	release := holdCommit(t, db)
	before := db.group.commits.Load()

	const callers = 20
	ids := make([]uuid.UUID, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		ids[i] = uuid.New()
		wg.Go(func() { _, errs[i] = db.RecordIntake(intakeOfIDs(customer, ids[i])) })
	}
	waitQueued(t, db, callers+1) // the held write and the callers
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	// Mostly 1 (and the held write's); a caller still on its way to the
	// queue at the release takes a later one.
	if got := db.group.commits.Load() - before; got > 5 {
		t.Errorf("commits for %d requests that waited together: got %d, want at most 5", callers, got)
	}
	if n := known(t, db, customer, ids...); n != callers {
		t.Errorf("ids recorded: got %d, want %d", n, callers)
	}
}

// TestGroupCommitFailureStaysWithItsCaller: a write that fails in a group
// fails alone, and what it wrote before failing is rolled back; the others
// of its group are stored.
func TestGroupCommitFailureStaysWithItsCaller(t *testing.T) {
	db := openTest(t, nil)
	customer := uuid.New()
	release := holdCommit(t, db)
	boom := errors.New("boom")
	lost := uuid.New()

	var wg sync.WaitGroup
	var failErr error
	ok := make([]uuid.UUID, 5)
	okErrs := make([]error, len(ok))
	wg.Go(func() {
		failErr = db.group.do(func(g *groupTx) error {
			in := intakeOfIDs(customer, lost)
			if _, err := g.recordIntake(in, newIDClaim(in)); err != nil {
				return err
			}
			return boom
		})
	})
	for i := range ok {
		ok[i] = uuid.New()
		wg.Go(func() { _, okErrs[i] = db.RecordIntake(intakeOfIDs(customer, ok[i])) })
	}
	waitQueued(t, db, int64(len(ok))+2)
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
	if n := known(t, db, customer, ok...); n != len(ok) {
		t.Errorf("ids of the other writes recorded: got %d, want %d", n, len(ok))
	}
	if n := known(t, db, customer, lost); n != 0 {
		t.Errorf("the failed write's id was kept")
	}
}

// TestGroupCommitAfterClose: a write after Close fails instead of waiting.
func TestGroupCommitAfterClose(t *testing.T) {
	db := openTest(t, nil)
	db.Close()
	if _, err := db.RecordIntake(intakeOfIDs(uuid.New(), uuid.New())); !errors.Is(err, errClosed) {
		t.Errorf("RecordIntake after Close: got %v, want errClosed", err)
	}
}

// TestGroupClaimsAnIDOnce: of the requests of one group with the same
// sender's id, the first takes it and the others find it a duplicate.
func TestGroupClaimsAnIDOnce(t *testing.T) {
	db := openTest(t, nil)
	customer, id := uuid.New(), uuid.New()
	release := holdCommit(t, db)
	const callers = 6
	dups := make([]int, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			res, err := db.RecordIntake(intakeOfIDs(customer, id, uuid.New()))
			dups[i], errs[i] = len(res.Duplicates), err
		})
	}
	waitQueued(t, db, callers+1)
	release()
	wg.Wait()
	fresh := 0
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if dups[i] == 0 {
			fresh++
		} else if dups[i] != 1 {
			t.Errorf("caller %d: got %d duplicates, want 1 (the shared id)", i, dups[i])
		}
	}
	if fresh != 1 {
		t.Errorf("got %d requests that took the id, want 1", fresh)
	}
}

// TestGroupFailsAtOnceWhileUnreachable: when the database cannot be
// reached, a group's writes all fail with store.ErrUnavailable at once,
// not each again in a transaction of its own.
func TestGroupFailsAtOnceWhileUnreachable(t *testing.T) {
	ctx := context.Background()
	c := pgtest.New(t)
	dsn, err := c.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, dsn, Options{QueryTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	customer := uuid.New()
	release := holdCommit(t, db)
	const callers = 10
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { _, errs[i] = db.RecordIntake(intakeOfIDs(customer, uuid.New())) })
	}
	waitQueued(t, db, callers+1)
	c.Kill()
	before := db.group.commits.Load()
	release()
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("caller %d: got %v, want ErrUnavailable", i, err)
		}
	}
	if got := db.group.commits.Load() - before; got > 2 {
		t.Errorf("got %d transactions for %d writes that waited together, want the group's alone", got, callers)
	}
}
