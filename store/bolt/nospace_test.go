package bolt

import (
	"errors"
	"hookd/store"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// mountTmpfs mounts a tmpfs of size on a fresh directory, unmounted at
// cleanup; it skips the test where mounting is refused.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): this test needs a small file system to fill", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// On a full file system a write fails with ErrNoSpace, changes nothing
// and leaves a consistent store that takes writes again once space is
// freed.
func TestFullFileSystemIsErrNoSpace(t *testing.T) {
	dir := mountTmpfs(t, "8m")
	db, err := Open(filepath.Join(dir, "data"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := addEvSub(t, db, uuid.New(), "s")
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 64<<10)); err != nil {
			break // full
		}
	}
	f.Close()
	payload := []byte(`{"sub":"` + strings.Repeat("x", 2000) + `"}`)
	var ds []store.Delivery
	for range 200 {
		ds = append(ds, store.Delivery{SubscriptionID: s.ID})
	}
	var addErr error
	for range 50 {
		if _, addErr = db.AddEvents([]store.NewEvent{{Type: "entityCreated", Payload: payload}}, ds); addErr != nil {
			break
		}
	}
	if !errors.Is(addErr, store.ErrNoSpace) {
		t.Fatalf("got %v on a full file system, want ErrNoSpace", addErr)
	}
	sum, err := db.Summary(s.CustomerID, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Check(); err != nil {
		t.Fatalf("consistency check after the refused write: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddEvents([]store.NewEvent{{Type: "entityCreated", Payload: payload}}, ds); err != nil {
		t.Fatalf("add events after space was freed: %v", err)
	}
	after, _ := db.Summary(s.CustomerID, s.ID)
	if after.Retrying != sum.Retrying+uint64(len(ds)) {
		t.Errorf("got %d waiting events, want %d: the refused write left nothing", after.Retrying, sum.Retrying+uint64(len(ds)))
	}
	if err := db.Check(); err != nil {
		t.Errorf("consistency check: %v", err)
	}
}
