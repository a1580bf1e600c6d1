package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/recovery"
	"hookd/store"
)

// recoverySub creates an enabled subscription of customer cid.
func recoverySub(t *testing.T, db store.Store, cid uuid.UUID) uuid.UUID {
	t.Helper()
	now := time.Now()
	s := store.Subscription{ID: uuid.New(), CustomerID: cid, Title: "recovered", Endpoint: "https://listener.example/hook",
		Events: []string{"entityCreated"}, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// Without a recovery runner, or once it is closed (hookd shutting down),
// a recovery is refused with 503 and a reason.
func TestRecoveryUnavailable(t *testing.T) {
	db, cid, token := testTenant(t)
	sid := recoverySub(t, db, cid)
	path := "/" + cid.String() + "/webhooks/subscriptions/" + sid.String() + "/events/redeliver"

	_, none := testAPI(t, db, Options{})
	if r := callAPI(t, http.MethodPost, none+path, token, "", nil); r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Problem.Details, "not available") {
		t.Errorf("no runner: got %d %s, want 503", r.Status, r.Body)
	}
	if r := callAPI(t, http.MethodGet, none+path+"/"+uuid.NewString(), token, "", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("no runner, GET: got %d %s, want 503", r.Status, r.Body)
	}

	runner := recovery.New(recovery.Options{DB: db})
	runner.Start(context.Background())
	_, closed := testAPI(t, db, Options{Recoveries: runner})
	if r := callAPI(t, http.MethodPost, closed+path, token, "", nil); r.Status != http.StatusAccepted {
		t.Fatalf("running: got %d %s, want 202", r.Status, r.Body)
	}
	runner.Close()
	if r := callAPI(t, http.MethodPost, closed+path, token, "", nil); r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Problem.Details, "shutting down") {
		t.Errorf("closed runner: got %d %s, want 503 saying hookd is shutting down", r.Status, r.Body)
	}
}
