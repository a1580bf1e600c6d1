package bolt

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(junk); err == nil {
		t.Error("got no error for a file that is not bbolt, want one")
	}
	other := filepath.Join(dir, "other.db")
	db, err := bbolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := CheckFile(other); err == nil || !strings.Contains(err.Error(), "not a hookd store") {
		t.Errorf("got %v for an empty bbolt file, want \"not a hookd store\"", err)
	}
	good := t.TempDir()
	s, err := Open(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(filepath.Join(good, FileName)); err != nil {
		t.Errorf("got %v for a hookd store, want nil", err)
	}
}
