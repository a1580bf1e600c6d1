package bolt

import (
	"bytes"
	"encoding/binary"
	"hookd/store"
	"slices"

	"github.com/google/uuid"
)

// searchEvents serves an Events query with a txn or a subject. The store
// keeps no index of them (an index entry per event would cost about 60
// bytes of file for every event, searched or not): it reads the
// subscription's newest store.SearchScanLimit events, newest first, with
// q's other conditions, and answers the matches among them in q's order.
func searchEvents(refs strRefs, sub uuid.UUID, q store.EventQuery) ([]store.Event, int, error) {
	tx := refs.tx
	typ := refs.typeMatch(q.Type)
	var subject []byte
	if q.Subject != "" {
		subject = store.SubjectJSON(q.Subject)
	}
	var seqs []uint64
	c := tx.Bucket(bucketEvents).Cursor()
	read := 0
	for k, v := lastWithPrefix(c, sub[:]); k != nil && bytes.HasPrefix(k, sub[:]) && read < store.SearchScanLimit; k, v = c.Prev() {
		read++
		state := recordState(v)
		if q.State != 0 && state != q.State {
			continue
		}
		if q.Reason != 0 && recordReason(v) != q.Reason {
			continue
		}
		at := recordCreatedAt(v)
		if !q.After.IsZero() && !at.After(q.After) {
			break // older from here on
		}
		if !q.Before.IsZero() && !at.Before(q.Before) {
			continue
		}
		if q.Type != "" && !typ.match(v) {
			continue
		}
		txn, payload, ok := recordTxnPayload(v, subject != nil)
		if !ok {
			continue
		}
		if q.Txn != "" && txn != q.Txn {
			continue
		}
		if subject != nil && !hasSubject(payload, subject) {
			continue
		}
		seq := binary.BigEndian.Uint64(k[16:])
		if q.Filter != nil && !q.Filter(seq, state) {
			continue
		}
		seqs = append(seqs, seq)
	}
	if !q.Desc {
		slices.Reverse(seqs)
	}
	total := len(seqs)
	out := []store.Event{}
	for i := max(q.Offset, 0); i < total && len(out) < q.Limit; i++ {
		var e store.Event
		if err := getEvent(refs, sub, seqs[i], &e); err != nil {
			return nil, 0, err
		}
		exportedAt(tx, &e)
		out = append(out, e)
	}
	return out, total, nil
}

// hasSubject reports whether the event object payload has the top-level
// member "sub" whose JSON text is encoded (store.SubjectJSON): a payload
// without those bytes does not match, one with them is decoded to check
// that they are that member's.
func hasSubject(payload, encoded []byte) bool {
	if !bytes.Contains(payload, encoded) {
		return false
	}
	return bytes.Equal(store.SubjectText(payload), encoded)
}

// recordTxnPayload reads the txn and, when withPayload, the event object
// of an encoded record without decoding the rest (the layout of
// appendEvent, as recordType and recordTypeRef read it); ok is false when
// the record cannot be read. A version 4 record's event object is
// decompressed (a copy); an older one's points into b.
func recordTxnPayload(b []byte, withPayload bool) (txn string, payload []byte, ok bool) {
	if h, ok := recordHead4(b); ok {
		d := decoder{b: h.rest}
		if d.byte() != 0 {
			d.take(16) // sender's id
		}
		d.uvarint() // dueAt
		d.uvarint() // exportedAt
		d.varint()  // toe
		d.uvarint() // attempts
		d.uvarint() // round start
		d.skipRef() // type
		txn = d.txn()
		if withPayload {
			d.skipRef() // endpoint
			payload = d.payload()
		}
		return txn, payload, d.err == nil
	}
	if len(b) < offFailSeq+8 {
		return "", nil, false
	}
	d := decoder{b: b[offFailSeq+8:]}
	if b[0] >= 2 {
		d.take(1 + 16) // reason code, sender's id
	}
	d.varint()        // toe
	d.uvarint()       // attempts
	d.uvarint()       // round start
	d.take(d.count()) // type
	t := d.take(d.count())
	d.take(d.count()) // endpoint
	payload = d.take(d.count())
	return string(t), payload, d.err == nil
}

// skipRef passes over a string written by appendRef without reading the
// string table.
func (d *decoder) skipRef() {
	if d.uvarint() == 0 && d.err == nil {
		d.take(d.count())
	}
}
