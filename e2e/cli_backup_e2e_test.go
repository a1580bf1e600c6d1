package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hookd/store/bolt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// createSub creates a subscription through the API and returns its id; it
// is safe to call from any goroutine.
func createSub(h *hookd, tn tenant, title string) (uuid.UUID, error) {
	body, _ := json.Marshal(map[string]any{"title": title, "endpoint": "http://127.0.0.1:1/hook", "events": []string{"entityCreated"}})
	req, err := http.NewRequest(http.MethodPost, h.URL+tn.path("/webhooks/subscriptions"), bytes.NewReader(body))
	if err != nil {
		return uuid.Nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tn.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return uuid.Nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return uuid.Nil, fmt.Errorf("create subscription: got status %d, want 201: %s", resp.StatusCode, data)
	}
	var s struct{ ID uuid.UUID }
	err = json.Unmarshal(data, &s)
	return s.ID, err
}

func TestBackupWhileServingUnderWrites(t *testing.T) {
	boltOnly(t, "the hot copy")
	h := startHookd(t, "", "--subscription-limit", "100000")
	tn := h.newTenant()
	before := map[uuid.UUID]bool{}
	for i := range 50 {
		id, err := createSub(h, tn, fmt.Sprintf("before %d", i))
		if err != nil {
			t.Fatal(err)
		}
		before[id] = true
	}

	// Writers keep creating subscriptions while the backup runs.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var during int
	var writeErr error
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := createSub(h, tn, fmt.Sprintf("during %d-%d", w, i)); err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						writeErr = err
						mu.Unlock()
					}
					return
				}
				mu.Lock()
				during++
				mu.Unlock()
			}
		}()
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "backup.db")
	var stdouts []string
	for range 3 { // several backups, each overlapping the writes
		stdout, stderr, err := cliRun(t, t.Context(), "backup", "--data", h.Data, "--force", file)
		if err != nil {
			t.Fatalf("backup: %v\nstderr: %s", err, stderr)
		}
		stdouts = append(stdouts, stdout)
	}
	stop()
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	if during == 0 {
		t.Fatal("no subscription was created during the backups")
	}
	if !strings.Contains(stdouts[2], "consistency check passed") {
		t.Errorf("got output %q, want the check reported", stdouts[2])
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("got %s.tmp left behind (%v), want it renamed", file, err)
	}

	// The copy is a consistent store holding every subscription that
	// existed before the backup started.
	restore := t.TempDir()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restore, bolt.FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(restore, bolt.Options{})
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Fatalf("bbolt check of the backup: %v", err)
	}
	subs, err := db.Subscriptions(tn.Customer)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uuid.UUID]bool{}
	for _, s := range subs {
		got[s.ID] = true
	}
	for id := range before {
		if !got[id] {
			t.Errorf("got no subscription %s in the backup, want every subscription created before it", id)
		}
	}
	if len(subs) < len(before) || len(subs) > len(before)+during {
		t.Errorf("got %d subscriptions in the backup, want between %d and %d", len(subs), len(before), len(before)+during)
	}
	if _, err := db.Authenticate(tn.Customer, uuid.MustParse(tn.ClientID), tn.Secret); err != nil {
		t.Errorf("authenticate against the backup: got %v, want the client restored", err)
	}
}

func TestBackupRefusesExistingFileAndBadToken(t *testing.T) {
	boltOnly(t, "the hot copy")
	h := startHookd(t, "")
	file := filepath.Join(t.TempDir(), "b.db")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := cliRun(t, t.Context(), "backup", "--data", h.Data, file)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("got error %v, want a refusal naming --force", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("got file %q, want it untouched", b)
	}

	_, _, err = cliRun(t, t.Context(), "backup", "--data", h.Data, "--admin-token", "not-the-admin-token", "--force", file)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("got error %v, want 403", err)
	}
	resp, body := h.call(http.MethodGet, "/admin/backup", "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /admin/backup without a token: got status %d, want 401: %s", resp.StatusCode, body)
	}

	resp, body = h.call(http.MethodGet, "/admin/backup", h.AdminToken, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/backup: got status %d, want 200", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Content-Length"), fmt.Sprint(len(body)); got != want {
		t.Errorf("got Content-Length %s, want %s", got, want)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment; filename=\"hookd-") {
		t.Errorf("got Content-Disposition %q, want an attachment named hookd-<time>.db", cd)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("got Content-Type %q, want application/octet-stream", ct)
	}
}

// TestBackupOnPostgresNamesPgDump: on PostgreSQL, hookd has no hot copy of
// its own; hookd backup says to use the database's tools and writes no
// file, and the route answers 501.
func TestBackupOnPostgresNamesPgDump(t *testing.T) {
	if !onPostgres() {
		t.Skipf("PostgreSQL only (%s=postgres)", storeEnv)
	}
	h := startHookd(t, "")
	file := filepath.Join(t.TempDir(), "b.db")
	_, _, err := cliRun(t, t.Context(), "backup", "--data", h.Data, file)
	if err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("got error %v, want one that names pg_dump", err)
	}
	for _, f := range []string{file, file + ".tmp"} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want no file", f, err)
		}
	}
	resp, body := h.call(http.MethodGet, "/admin/backup", h.AdminToken, nil)
	readProblem(t, resp, body, http.StatusNotImplemented)
}
