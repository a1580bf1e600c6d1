package bolt

import (
	"encoding/binary"
	"hookd/store"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"
)

// The attemptDetails bucket keeps the details of an event's last attempts
// (store.AttemptDetail) apart from its record, under the event's key, so
// that an event that has none (delivered at its first attempt with an
// empty body, the usual case) costs nothing more, and so that scans of the
// events bucket do not read them. The value: per detail, oldest first,
// uvarint attempt, uvarint status code, uvarint header count, each header
// as two length-prefixed strings, and the length-prefixed body.

// addAttemptDetail appends d to the event's details, keeping the last
// store.KeptAttemptDetails, unless it keeps one of d's attempt already.
func addAttemptDetail(tx *bbolt.Tx, sub uuid.UUID, seq uint64, d store.AttemptDetail) error {
	b := tx.Bucket(bucketAttemptDetails)
	key := eventKey(sub, seq)
	ds, err := decodeAttemptDetails(b.Get(key))
	if err != nil {
		ds = nil // a corrupt value is replaced, not carried on
	}
	if len(ds) > 0 && ds[len(ds)-1].Attempt >= d.Attempt {
		return nil
	}
	ds = store.KeepLastDetails(append(ds, d))
	return b.Put(key, appendAttemptDetails(nil, ds))
}

// getAttemptDetails returns the event's details, oldest first.
func getAttemptDetails(tx *bbolt.Tx, sub uuid.UUID, seq uint64) ([]store.AttemptDetail, error) {
	return decodeAttemptDetails(tx.Bucket(bucketAttemptDetails).Get(eventKey(sub, seq)))
}

func appendAttemptDetails(dst []byte, ds []store.AttemptDetail) []byte {
	for _, d := range ds {
		dst = binary.AppendUvarint(dst, uint64(d.Attempt))
		dst = binary.AppendUvarint(dst, uint64(d.StatusCode))
		dst = binary.AppendUvarint(dst, uint64(len(d.Headers)))
		for _, h := range d.Headers {
			dst = appendString(dst, h.Name)
			dst = appendString(dst, h.Value)
		}
		dst = appendBytes(dst, d.Body)
	}
	return dst
}

func decodeAttemptDetails(b []byte) ([]store.AttemptDetail, error) {
	var out []store.AttemptDetail
	d := decoder{b: b}
	for len(d.b) > 0 && d.err == nil {
		x := store.AttemptDetail{Attempt: int(d.uvarint()), StatusCode: int(d.uvarint())}
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			x.Headers = append(x.Headers, store.Header{Name: d.string(), Value: d.string()})
		}
		x.Body = d.bytes()
		out = append(out, x)
	}
	return out, d.err
}

// EventAttempts returns one event of the customer's subscription by id with
// the details kept of its last attempts.
func (db *DB) EventAttempts(customerID, sub, id uuid.UUID) (store.Event, []store.AttemptDetail, error) {
	var e store.Event
	var ds []store.AttemptDetail
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getSubscription(tx, customerID, sub); err != nil {
			return err
		}
		if err := getEventByID(db.refs(tx), sub, id, &e); err != nil {
			return err
		}
		var err error
		ds, err = getAttemptDetails(tx, sub, e.Seq)
		ds = store.WithLastDetail(&e, ds)
		return err
	})
	return e, ds, err
}
