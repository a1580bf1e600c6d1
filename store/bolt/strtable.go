package bolt

import (
	"encoding/binary"
	"errors"
	"sync"

	"go.etcd.io/bbolt"
)

// The string table keeps, once for the whole file, the long strings that
// repeat in every event record (record version 4): a token's protected
// header (one per signing key), its issuer (one per customer and public
// URL), the event's type and its endpoint (one per subscription
// endpoint). A record
// stores a string's number instead, one or two bytes instead of 50 to 90.
// Numbers are never reused and an entry is never changed, so a number read
// from a committed record always names the same string; the table only
// grows, by one entry per signing key, issuer and endpoint ever used.
//
//	strings
//	  <id 8>     -> the string
//	stringIds
//	  <string>   -> id 8
//
// strTable caches the committed entries; a write transaction's new entries
// join the cache when it commits, so a rolled-back number is never cached.
type strTable struct {
	mu   sync.RWMutex
	ids  map[string]uint64
	strs map[uint64]string
}

var (
	bucketStrings   = []byte("strings")
	bucketStringIDs = []byte("stringIds")
)

// maxInternedLen bounds the strings the table takes: a longer one (an
// endpoint may be up to the subscription limit) is stored in the record.
const maxInternedLen = 512

var errNoString = errors.New("event record names a string the table does not have")

// loadStrTable reads the whole table; it holds a few entries per customer.
func loadStrTable(tx *bbolt.Tx) (*strTable, error) {
	t := &strTable{ids: map[string]uint64{}, strs: map[uint64]string{}}
	b := tx.Bucket(bucketStrings)
	if b == nil {
		return t, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return errCorrupt
		}
		id, s := binary.BigEndian.Uint64(k), string(v)
		t.ids[s], t.strs[id] = id, s
		return nil
	})
	return t, err
}

// id returns the number of s in tx, adding it when new; tx is writable.
func (t *strTable) id(tx *bbolt.Tx, s string) (uint64, error) {
	t.mu.RLock()
	id, ok := t.ids[s]
	t.mu.RUnlock()
	if ok {
		return id, nil
	}
	if v := tx.Bucket(bucketStringIDs).Get([]byte(s)); len(v) == 8 {
		return binary.BigEndian.Uint64(v), nil // added earlier in tx
	}
	strs := tx.Bucket(bucketStrings)
	id, err := strs.NextSequence()
	if err != nil {
		return 0, err
	}
	if err := strs.Put(u64(id), []byte(s)); err != nil {
		return 0, err
	}
	if err := tx.Bucket(bucketStringIDs).Put([]byte(s), u64(id)); err != nil {
		return 0, err
	}
	tx.OnCommit(func() { t.add(id, s) })
	return id, nil
}

// cached returns the number of the committed string b; false when the
// cache does not have it (it may still be in the table).
func (t *strTable) cached(b []byte) (uint64, bool) {
	t.mu.RLock()
	id, ok := t.ids[string(b)]
	t.mu.RUnlock()
	return id, ok
}

// lookup returns the number of s in tx without adding it; false when s
// has none.
func (t *strTable) lookup(tx *bbolt.Tx, s string) (uint64, bool) {
	t.mu.RLock()
	id, ok := t.ids[s]
	t.mu.RUnlock()
	if ok {
		return id, true
	}
	if v := tx.Bucket(bucketStringIDs).Get([]byte(s)); len(v) == 8 {
		return binary.BigEndian.Uint64(v), true
	}
	return 0, false
}

// str returns the string numbered id in tx.
func (t *strTable) str(tx *bbolt.Tx, id uint64) (string, error) {
	t.mu.RLock()
	s, ok := t.strs[id]
	t.mu.RUnlock()
	if ok {
		return s, nil
	}
	// Committed after the cache was last updated, or added in tx.
	v := tx.Bucket(bucketStrings).Get(u64(id))
	if v == nil {
		return "", errNoString
	}
	s = string(v)
	if !tx.Writable() {
		t.add(id, s)
	}
	return s, nil
}

func (t *strTable) add(id uint64, s string) {
	t.mu.Lock()
	t.ids[s], t.strs[id] = id, s
	t.mu.Unlock()
}

// strRefs are the string table as seen by one transaction, what the
// record codec reads and writes interned strings through.
type strRefs struct {
	t  *strTable
	tx *bbolt.Tx
}

func (db *DB) refs(tx *bbolt.Tx) strRefs { return strRefs{db.strings, tx} }

// migrateStringTable adds the buckets of the string table.
func migrateStringTable(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketStrings, bucketStringIDs} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}
