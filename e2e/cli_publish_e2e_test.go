package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hookd/store"
	"hookd/store/bolt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// requireIntake skips while the intake route is not wired into the tree.
func requireIntake(t *testing.T, h *hookd, tn tenant) {
	t.Helper()
	resp, body := h.call(http.MethodPost, tn.path("/webhooks/events"), h.AdminToken, "", "Content-Type", "application/x-ndjson")
	if resp.StatusCode == http.StatusNotFound && strings.Contains(string(body), "no route") {
		t.Skip("the intake (POST /{customerId}/webhooks/events) is not wired yet")
	}
}

// testEvent is one intake line of type typ.
func testEvent(typ string, i int) string {
	attrs := ""
	if typ == "entityUpdated" {
		attrs = `,"attributes":["email"]`
	}
	return fmt.Sprintf(`{"type":%q,"event":{"captureApplicationId":"app","captureClientId":"client","entityType":"user","globalSub":"capture-v1://example/user/%[2]d","sub":"%[3]s"%[4]s},"txn":"%[3]s","toe":%[5]d}`,
		typ, i, uuid.NewSHA1(uuid.Nil, []byte(fmt.Sprint(i))), attrs, 1700000000+i)
}

// storeCopy backs up a running hookd with hookd backup and opens the copy;
// on PostgreSQL, where a store is read while hookd runs, it opens the
// running hookd's database.
func storeCopy(t *testing.T, h *hookd) store.Store {
	t.Helper()
	if onPostgres() {
		return openStore(t, h.Data)
	}
	dir := t.TempDir()
	if _, stderr, err := cliRun(t, t.Context(), "backup", "--data", h.Data, filepath.Join(dir, bolt.FileName)); err != nil {
		t.Fatalf("backup: %v\n%s", err, stderr)
	}
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPublishToRunningHookd(t *testing.T) {
	h := startHookd(t, "")
	tn := h.newTenant()
	requireIntake(t, h, tn)
	both, err := createSubWith(h, tn, "both types", "entityCreated", "entityUpdated")
	if err != nil {
		t.Fatal(err)
	}
	created, err := createSubWith(h, tn, "created only", "entityCreated")
	if err != nil {
		t.Fatal(err)
	}

	var b bytes.Buffer
	for i := range 1200 {
		typ := "entityCreated"
		if i%2 == 1 {
			typ = "entityUpdated"
		}
		b.WriteString(testEvent(typ, i) + "\n")
		if i%100 == 0 {
			b.WriteString("\n")
		}
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := cliRun(t, t.Context(), "publish", "--data", h.Data, "--customer", tn.Customer.String(), "--batch", "250", file)
	if err != nil {
		t.Fatalf("publish: %v\nstderr: %s", err, stderr)
	}
	if want := "1200 lines in 5 requests"; !strings.Contains(stdout, want) {
		t.Errorf("got summary %q, want %q", stdout, want)
	}
	if want := "accepted 1200 events and recorded 1800 deliveries"; !strings.Contains(stdout, want) {
		t.Errorf("got summary %q, want %q", stdout, want)
	}

	db := storeCopy(t, h)
	for sub, want := range map[uuid.UUID]uint64{both: 1200, created: 600} {
		s, err := db.Summary(tn.Customer, sub)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Succeeded + s.Retrying + s.Failed; got != want {
			t.Errorf("subscription %s: got %d events stored, want %d", sub, got, want)
		}
	}
}

func TestPublishNamesTheRefusedFileLine(t *testing.T) {
	h := startHookd(t, "")
	tn := h.newTenant()
	requireIntake(t, h, tn)
	if _, err := createSubWith(h, tn, "created", "entityCreated"); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for i := range 30 {
		line := testEvent("entityCreated", i)
		if i == 24 {
			line = `{"type":"entityBogus","event":{"entityType":"user"}}`
		}
		b.WriteString(line + "\n\n") // FILE line of event i is 2i+1
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := cliRun(t, t.Context(), "publish", "--data", h.Data, "--customer", tn.Customer.String(), "--batch", "10", "--concurrency", "1", file)
	if err == nil {
		t.Fatal("got no error, want the bad line refused")
	}
	if want := fmt.Sprintf("%s line %d", file, 2*24+1); !strings.Contains(err.Error(), want) {
		t.Errorf("got error %q, want it to name %q", err, want)
	}
	if !strings.Contains(stdout, "accepted 20 events") {
		t.Errorf("got summary %q, want the 20 events of the batches before the refused one", stdout)
	}
}

// createSubWith creates a subscription to the given event types.
func createSubWith(h *hookd, tn tenant, title string, events ...string) (uuid.UUID, error) {
	var s struct{ ID uuid.UUID }
	resp, data := h.call(http.MethodPost, tn.path("/webhooks/subscriptions"), tn.Token,
		map[string]any{"title": title, "endpoint": "http://127.0.0.1:1/hook", "events": events})
	if resp.StatusCode != http.StatusCreated {
		return uuid.Nil, fmt.Errorf("create subscription: got status %d, want 201: %s", resp.StatusCode, data)
	}
	err := json.Unmarshal(data, &s)
	return s.ID, err
}
