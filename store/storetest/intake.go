package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

func init() {
	register(map[string]func(*testing.T, Opener){
		"RecordIntakeSkipsKnownIDs":  testRecordIntakeSkipsKnownIDs,
		"RecordIntakeIdempotencyKey": testRecordIntakeIdempotencyKey,
		"RecordIntakeScopedIDs":      testRecordIntakeScopedIDs,
	})
}

func testRecordIntakeSkipsKnownIDs(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	other := addEvSub(t, db, uuid.New(), "other customer")
	a, b := uuid.New(), uuid.New()

	res, err := db.RecordIntake(intakeOf(s, a, uuid.UUID{}, a))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 2 || len(res.Duplicates) != 1 || res.Duplicates[0] != 2 {
		t.Fatalf("first request: got %d added, duplicates %v, want 2 and [2] (the id repeated within the request)", len(res.Added), res.Duplicates)
	}
	if e := mustEvent(t, db, s, res.Added[0].ID); e.Jti != a || e.JTI() != a {
		t.Errorf("event with a sender id: got jti %s, want %s", e.JTI(), a)
	}
	if e := mustEvent(t, db, s, res.Added[1].ID); e.JTI() != e.ID {
		t.Errorf("event without a sender id: got jti %s, want its id %s", e.JTI(), e.ID)
	}

	res, err = db.RecordIntake(intakeOf(s, a, b))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 1 || len(res.Duplicates) != 1 || res.Duplicates[0] != 0 {
		t.Errorf("retry: got %d added, duplicates %v, want 1 and [0]", len(res.Added), res.Duplicates)
	}
	// Ids are per customer.
	if res, err := db.RecordIntake(intakeOf(other, a)); err != nil || len(res.Added) != 1 || len(res.Duplicates) != 0 {
		t.Errorf("another customer's event with the same id: got %d added, duplicates %v, %v; want it recorded", len(res.Added), res.Duplicates, err)
	}
	if sum := mustSummary(t, db, s); sum.Retrying != 3 {
		t.Errorf("got %d events stored, want 3", sum.Retrying)
	}

	// After the retention the janitor forgets the ids; a newer id stays.
	clk.Add(time.Hour)
	c := uuid.New()
	if _, err := db.RecordIntake(intakeOf(s, c)); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PurgeIntakeIDs(clk.Now().Add(-time.Minute), 100); err != nil || n != 3 {
		t.Fatalf("purge: got %d, %v, want 3 ids (a, b, and a of the other customer)", n, err)
	}
	res, err = db.RecordIntake(intakeOf(s, a, c))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 1 || len(res.Duplicates) != 1 || res.Duplicates[0] != 1 {
		t.Errorf("after the purge: got %d added, duplicates %v, want a recorded again and c a duplicate", len(res.Added), res.Duplicates)
	}
}

func testRecordIntakeIdempotencyKey(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	calls := 0
	keyed := func(key string, body string) store.Intake {
		in := intakeOf(s, uuid.UUID{})
		in.Key, in.RequestHash = key, sha256.Sum256([]byte(body))
		in.Answer = func(res store.IntakeResult) ([]byte, error) {
			calls++
			return []byte(fmt.Sprintf(`{"recorded":%d,"call":%d}`, len(res.Added), calls)), nil
		}
		return in
	}
	res, err := db.RecordIntake(keyed("k1", "body"))
	if err != nil || res.Replay != nil || len(res.Added) != 1 {
		t.Fatalf("first request: got %+v, %v, want one event recorded", res, err)
	}
	first := []byte(fmt.Sprintf(`{"recorded":1,"call":%d}`, calls))
	res, err = db.RecordIntake(keyed("k1", "body"))
	if err != nil || !bytes.Equal(res.Replay, first) || len(res.Added) != 0 {
		t.Fatalf("repeat: got replay %q added %d, %v; want %q and nothing recorded", res.Replay, len(res.Added), err, first)
	}
	if _, err := db.RecordIntake(keyed("k1", "another body")); !errors.Is(err, store.ErrKeyReused) {
		t.Errorf("the key with another request: got %v, want ErrKeyReused", err)
	}
	if sum := mustSummary(t, db, s); sum.Retrying != 1 {
		t.Errorf("got %d events stored, want 1", sum.Retrying)
	}

	// After the TTL the key is free again, even before the janitor.
	clk.Add(store.IdempotencyKeyTTL)
	if res, err := db.RecordIntake(keyed("k1", "another body")); err != nil || res.Replay != nil || len(res.Added) != 1 {
		t.Fatalf("after the TTL: got %+v, %v, want a new request", res, err)
	}
	if _, err := db.RecordIntake(keyed("k2", "body")); err != nil {
		t.Fatal(err)
	}
	// The purge removes only index entries older than the cutoff, and the
	// reused key's fresh record stays.
	if n, err := db.PurgeIdempotencyKeys(clk.Now().Add(-time.Minute), 100); err != nil || n != 0 {
		t.Errorf("purge before anything expired: got %d, %v, want 0", n, err)
	}
	clk.Add(store.IdempotencyKeyTTL + time.Minute)
	if n, err := db.PurgeIdempotencyKeys(clk.Now().Add(-store.IdempotencyKeyTTL), 100); err != nil || n != 2 {
		t.Errorf("purge after the TTL: got %d, %v, want 2", n, err)
	}
}

func testRecordIntakeScopedIDs(t *testing.T, open Opener) {
	db, clk := openEvents(t, open)
	s := addEvSub(t, db, uuid.New(), "s")
	a, b := uuid.New(), uuid.New()
	if _, err := db.RecordIntake(intakeOf(s, a)); err != nil {
		t.Fatal(err)
	}
	scoped := func(ids ...uuid.UUID) store.Intake {
		in := intakeOf(s, ids...)
		in.Scope = s.ID
		return in
	}
	// The customer's intake knew a: a scoped intake records it all the same.
	res, err := db.RecordIntake(scoped(a, b))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 2 || len(res.Duplicates) != 0 {
		t.Fatalf("scoped intake of ids the intake knew: got %d added, duplicates %v, want 2 and none", len(res.Added), res.Duplicates)
	}
	if e := mustEvent(t, db, s, res.Added[0].ID); e.JTI() != a {
		t.Errorf("scoped event: got jti %s, want %s", e.JTI(), a)
	}
	// Within the scope they are duplicates; outside it b is new.
	if res, err = db.RecordIntake(scoped(a, b)); err != nil || len(res.Added) != 0 || len(res.Duplicates) != 2 {
		t.Errorf("scoped intake again: got %d added, duplicates %v, %v; want nothing added, 2 duplicates", len(res.Added), res.Duplicates, err)
	}
	if res, err = db.RecordIntake(intakeOf(s, b)); err != nil || len(res.Added) != 1 || len(res.Duplicates) != 0 {
		t.Errorf("intake of an id only a scope knew: got %d added, duplicates %v, %v; want it recorded", len(res.Added), res.Duplicates, err)
	}
	// The janitor forgets scoped ids with the others.
	clk.Add(time.Hour)
	if n, err := db.PurgeIntakeIDs(clk.Now(), 100); err != nil || n != 4 {
		t.Fatalf("purge: got %d, %v; want the 4 ids", n, err)
	}
	if res, err = db.RecordIntake(scoped(a)); err != nil || len(res.Added) != 1 {
		t.Errorf("scoped intake after the purge: got %d added, %v; want 1", len(res.Added), err)
	}
}
