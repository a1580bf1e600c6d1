package bolt

import (
	"encoding/binary"
	"errors"
	"hookd/store"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// openTestDB opens a store in a fresh temporary directory. At the end of
// the test it runs bbolt's consistency check and closes the store.
func openTestDB(t testing.TB) *DB {
	t.Helper()
	db, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return db
}

// fileVersion reads the schema version written in the file at path.
func fileVersion(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer b.Close()
	var v uint64
	err = b.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("no meta bucket")
		}
		raw := meta.Get(keyVersion)
		if len(raw) != 8 {
			return errors.New("version is not 8 bytes")
		}
		v = binary.BigEndian.Uint64(raw)
		return nil
	})
	if err != nil {
		t.Fatalf("read version: %v", err)
	}
	return v
}

func TestOpenMigratesEmptyFile(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if got, want := db.Path(), filepath.Join(dir, FileName); got != want {
		t.Errorf("got path %s, want %s", got, want)
	}
	// Every bucket of the package doc exists after the migrations.
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{
			bucketMeta, bucketCustomers, bucketClients, bucketClientsByCustomer, bucketTokens,
			bucketTokenExpiry, bucketKeys, bucketSubscriptions, bucketSubsByCustomer,
			bucketSubTitles, bucketSubStats, bucketEvents, bucketDue, bucketFailures,
			bucketExports, bucketExportsBySub, bucketExportRanges, bucketTombstones,
			bucketIntakeIDs, bucketIntakeIDsByTime, bucketIntakeKeys, bucketIntakeKeysByTime,
		} {
			if tx.Bucket(name) == nil {
				t.Errorf("got no bucket %s, want it created", name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileVersion(t, filepath.Join(dir, FileName)); got != SchemaVersion {
		t.Errorf("got schema version %d, want %d", got, SchemaVersion)
	}
	// A second open finds the current version and changes nothing.
	db, err = Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if err := db.Check(); err != nil {
		t.Errorf("consistency check: %v", err)
	}
	db.Close()
	if got := fileVersion(t, filepath.Join(dir, FileName)); got != SchemaVersion {
		t.Errorf("after reopen: got schema version %d, want %d", got, SchemaVersion)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	newer := SchemaVersion + 7
	b, err := bbolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(keyVersion, u64(newer))
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}

	db, err := Open(dir, Options{NoSync: true})
	if err == nil {
		db.Close()
		t.Fatal("got nil error, want ErrNewerSchema")
	}
	if !errors.Is(err, store.ErrNewerSchema) {
		t.Fatalf("got error %v, want ErrNewerSchema", err)
	}
	msg := err.Error()
	for _, want := range []string{"schema " + itoa(newer), itoa(SchemaVersion), "upgrade hookd"} {
		if !strings.Contains(msg, want) {
			t.Errorf("got message %q, want it to contain %q", msg, want)
		}
	}
	// The refused file is left as it was.
	if got := fileVersion(t, filepath.Join(dir, FileName)); got != newer {
		t.Errorf("got version %d after the refused open, want %d", got, newer)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestOpenLockedFailsQuickly(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	const lockTimeout = 50 * time.Millisecond
	start := time.Now()
	second, err := Open(dir, Options{NoSync: true, LockTimeout: lockTimeout})
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("got a second open, want ErrLocked")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("got error %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
		t.Errorf("got message %q, want it to name the file", err)
	}
	if elapsed > lockTimeout+2*time.Second {
		t.Errorf("got failure after %s, want within %s", elapsed, lockTimeout+2*time.Second)
	}
}

func TestEventIDRoundTrip(t *testing.T) {
	randoms := [][10]byte{
		{},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
	}
	for _, seq := range []uint64{0, 1, 255, 256, 1<<32 + 5, 1<<48 - 1} {
		for _, rnd := range randoms {
			id := store.EventID(seq, rnd)
			if got := store.EventSeq(id); got != seq {
				t.Errorf("EventSeq(EventID(%d)): got %d, want %d", seq, got, seq)
			}
			if got := id.Version(); got != 8 {
				t.Errorf("EventID(%d, %x): got version %d, want 8", seq, rnd, got)
			}
			if got := id.Variant(); got != uuid.RFC4122 {
				t.Errorf("EventID(%d, %x): got variant %v, want RFC4122", seq, rnd, got)
			}
			parsed, err := uuid.Parse(id.String())
			if err != nil || parsed != id {
				t.Errorf("EventID(%d): %s does not parse back: %v", seq, id, err)
			}
		}
	}
	// Ids of growing sequences sort like the sequences.
	a, b := store.EventID(41, randoms[1]), store.EventID(42, randoms[0])
	if a.String() >= b.String() {
		t.Errorf("got %s >= %s, want ids ordered by sequence", a, b)
	}
}

func TestKeyCodecs(t *testing.T) {
	times := []time.Time{time.Unix(0, 1), time.Unix(1700000000, 5), time.Unix(1700000000, 6), time.Unix(4000000000, 0)}
	for i := 1; i < len(times); i++ {
		if string(timeKey(times[i-1])) >= string(timeKey(times[i])) {
			t.Errorf("timeKey(%v) >= timeKey(%v), want sorted", times[i-1], times[i])
		}
		if got := decodeTime(timeKey(times[i])); !got.Equal(times[i]) {
			t.Errorf("decodeTime(timeKey(%v)): got %v, want the same instant", times[i], got)
		}
	}
	if got := timeKey(time.Unix(-5, 0)); binary.BigEndian.Uint64(got) != 0 {
		t.Errorf("timeKey before 1970: got %x, want 0", got)
	}
	for _, tc := range []struct{ in, want []byte }{
		{[]byte{1, 2}, []byte{1, 3}},
		{[]byte{1, 0xff}, []byte{2}},
		{[]byte{0xff, 0xff}, nil},
	} {
		if got := prefixEnd(tc.in); string(got) != string(tc.want) {
			t.Errorf("prefixEnd(%x): got %x, want %x", tc.in, got, tc.want)
		}
	}
}

// TestFreelistSynced: the file's meta page names a freelist page, so that
// opening reads it instead of every page of the file.
func TestFreelistSynced(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := db.CreateClient(uuid.New(), uuid.New(), store.HashSecret("s"), func() (store.KeySet, error) { return store.KeySet{}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	// bbolt's two meta pages: a 16-byte page header, then magic, version,
	// page size and flags (4 bytes each), the root bucket (16), the
	// freelist's page id (8), the high water mark (8) and the txid (8).
	var freelist, txid uint64
	for _, off := range []int{0, pageSize} {
		m := f[off+16:]
		if id := binary.LittleEndian.Uint64(m[48:]); id >= txid {
			txid, freelist = id, binary.LittleEndian.Uint64(m[32:])
		}
	}
	if freelist == ^uint64(0) {
		t.Errorf("the latest meta page (txid %d) names no freelist page: opening would read every page", txid)
	}
}
