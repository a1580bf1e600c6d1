package bolt

import (
	"bytes"
	"errors"
	"hookd/store"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// TestEventPayloadCompressed: event objects read back byte for byte; the
// bench's object (three UUIDs) is stored in at most 110 bytes; what
// cannot be packed (UUIDs in upper case, a 0x00 byte, a short object) is
// kept as it is.
func TestEventPayloadCompressed(t *testing.T) {
	bench := benchEventObject()
	for _, tc := range []struct {
		name    string
		p       []byte
		kind    byte
		maxSize int
	}{
		{"bench object", bench, payloadS2, 110},
		{"uuids at both ends", []byte(uuid.NewString() + `,"captureClientId":"identity-admin-ui","entityType":"user",` + uuid.NewString()), payloadS2, 70},
		{"upper-case uuid", []byte(`{"captureApplicationId":"` + strings.ToUpper(uuid.NewString()) + `","captureClientId":"identity-admin-ui","entityType":"user"}`), payloadS2, 80},
		{"a 0x00 byte", append(bytes.Clone(bench), 0), payloadRaw, len(bench) + 4},
		{"short", []byte(`{"sub":"u"}`), payloadRaw, 14},
		{"large", []byte(`{"attributes":["` + strings.Repeat(uuid.NewString()+`","/profile/`, 30000) + `"]}`), payloadS2, 1 << 20},
		{"none", nil, payloadRaw, 2},
	} {
		rec := appendPayload(nil, tc.p)
		if rec[0] != tc.kind || len(rec) > tc.maxSize {
			t.Errorf("%s: %d bytes stored as kind %d, want kind %d in at most %d bytes", tc.name, len(rec), rec[0], tc.kind, tc.maxSize)
		}
		d := decoder{b: rec}
		if got := d.payload(); d.err != nil || !bytes.Equal(got, tc.p) || len(d.b) != 0 {
			t.Errorf("%s: got %q (err %v, %d bytes left), want %q", tc.name, got, d.err, len(d.b), tc.p)
		}
	}
	block := appendPayload(nil, bench)[2:] // after the kind and the length (one byte)
	for name, rec := range map[string][]byte{
		"truncated block": appendBytes([]byte{payloadS2}, block[:len(block)-5]),
		"unknown kind":    append([]byte{7}, block...),
		"mark cut short":  appendBytes([]byte{payloadS2}, payloadDictS2().Encode(nil, []byte("ab\x00cd"))),
	} {
		d := decoder{b: rec}
		if d.payload(); !errors.Is(d.err, errCorrupt) {
			t.Errorf("%s: got err %v, want errCorrupt", name, d.err)
		}
	}
}

// TestEventResponseDate: a Date header in HTTP's format is stored as a
// few bytes and read back as it was; any other value of it stays text.
func TestEventResponseDate(t *testing.T) {
	created := time.Date(2026, 12, 1, 12, 0, 0, 5, time.UTC)
	date := created.Add(3 * time.Second).Format(http.TimeFormat)
	for _, tc := range []struct {
		value   string
		maxSize int
	}{
		{date, 6},
		{"Tue, 1 Dec 2026 12:00:03 GMT", 40},    // not the canonical text
		{"Tuesday, 01-Dec-26 12:00:03 GMT", 48}, // RFC 850
		{"soon", 20},
	} {
		r := &store.Response{StatusCode: 204, Headers: []store.Header{{Name: "Date", Value: tc.value}}}
		rec := appendResponse(nil, r, created)
		d := decoder{b: rec}
		got := d.response(created)
		if d.err != nil || got == nil || len(got.Headers) != 1 || got.Headers[0] != r.Headers[0] || got.StatusCode != 204 {
			t.Errorf("Date %q: got %+v (err %v)", tc.value, got, d.err)
		}
		if len(rec) > tc.maxSize {
			t.Errorf("Date %q: %d bytes, want at most %d", tc.value, len(rec), tc.maxSize)
		}
	}
}

// TestStringTableRollback: a string added by a transaction that rolls
// back leaves nothing behind; the number it had goes to the next string,
// which every later transaction and a reopened store read as that one.
func TestStringTableRollback(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var rolledBack uint64
	errRollback := errors.New("roll back")
	err = db.bolt.Update(func(tx *bbolt.Tx) error {
		var err error
		if rolledBack, err = db.strings.id(tx, "https://rolled.example/back"); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	var kept uint64
	if err := db.bolt.Update(func(tx *bbolt.Tx) (err error) {
		kept, err = db.strings.id(tx, "https://kept.example/h")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if kept != rolledBack {
		t.Errorf("got number %d for the second string, want %d (the rolled-back one's, reused)", kept, rolledBack)
	}
	check := func(db *DB, when string) {
		t.Helper()
		_ = db.bolt.View(func(tx *bbolt.Tx) error {
			if s, err := db.strings.str(tx, kept); err != nil || s != "https://kept.example/h" {
				t.Errorf("%s: string %d is %q (err %v), want the kept one", when, kept, s, err)
			}
			if id, ok := db.strings.lookup(tx, "https://rolled.example/back"); ok {
				t.Errorf("%s: the rolled-back string has number %d, want none", when, id)
			}
			return nil
		})
	}
	check(db, "after the commit")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(db, "reopened")
}
