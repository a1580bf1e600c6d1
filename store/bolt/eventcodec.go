package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hookd/store"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Record versions: records of versions 1 to 3 are still read; every write
// is in the current version. Version 2 adds the event's reason code (a byte
// at offReason) and the sender's id (16 bytes after it, zero when none),
// and each history row's code and endpoint. Version 3 stores the token in
// parts (eventtoken.go) instead of whole: a kind byte, then the parts or
// the whole token; and a history row's endpoint as its length plus one, 0
// standing for the event's endpoint (the usual case: that of its token).
//
// Version 4 keeps the fixed header up to createdAt (version, state, id,
// createdAt) and makes the rest small: failedAt and the other times as
// varint differences from createdAt (a history row's from the row
// before; updatedAt, after the history, from the last row's), then the failure sequence as a varint and the reason byte
// (recordHead4 reads these three for scans); the sender's id only when
// there is one; toe as its difference from createdAt's second; a txn that
// is a UUID as its 16 bytes; the type, the endpoint, the token's header
// and its issuer as numbers in the file's string table (strtable.go); the
// event object compressed (eventpayload.go); a Date response header as
// seconds from createdAt (eventresponse.go); the history's first row
// left out when it is the usual one (awaiting-executing at creation); at
// the end, room for the first attempt (attemptRoom).
const (
	codecVersion1   = 1
	codecVersion2   = 2
	codecVersion3   = 3
	codecVersion    = 4
	offState        = 1
	offID           = 2
	offCreatedAt    = 18
	offFailedAt     = 26 // versions 1 to 3
	fixedHeaderSize = 34
	offFailSeq      = 58 // versions 1 to 3: after updatedAt, dueAt and exportedAt
	offReason       = 66 // versions 2 and 3: after failSeq
	offHead4        = 26 // version 4: failedAt, failSeq and reason as varints and a byte
)

// A history row's endpoint in a version 4 record: a byte, then for
// rowEndpointOther a string reference.
const (
	rowEndpointEvent = 0 // the event's endpoint
	rowEndpointNone  = 1 // none
	rowEndpointOther = 2
)

// Txn kinds: the byte before the txn in a version 4 record.
const (
	txnText = 0 // the text as it is
	txnUUID = 1 // the 16 bytes of a UUID in its canonical lower-case text
)

// appendEvent encodes e in the current version, adding the strings it
// interns to the string table of refs' transaction, with room bytes of
// room at its end (see attemptRoom). The fixed header lets scans filter
// without decoding the rest.
func appendEvent(dst []byte, e *store.Event, refs strRefs, room int) ([]byte, error) {
	return appendEventKept(dst, e, refs, room, nil)
}

// keptParts are encoded parts of a version 4 record that a rewrite of the
// same event copies as they are instead of encoding them again: the
// outcome of an attempt changes neither the event object nor, when the
// attempt made no new token, the token. Their slices point into the record
// as read (a bbolt value, valid until its transaction ends), and the
// scratch buffers are reused from one event to the next.
type keptParts struct {
	payload []byte // the payload as appendPayload wrote it; nil: encode e.Payload
	token   []byte // the token as appendToken wrote it; used while e.JWS is empty

	payloadBuf []byte               // the decoded event object
	history    []store.HistoryEntry // the decoded history, reused when its event is written
	tok        tokenScratch         // splitToken's buffers
}

// appendEventKept is appendEvent with kept's parts copied where they
// still hold (kept may be nil).
func appendEventKept(dst []byte, e *store.Event, refs strRefs, room int, kept *keptParts) ([]byte, error) {
	var err error
	base := nanos(e.CreatedAt)
	dst = append(dst, codecVersion, byte(e.State))
	dst = append(dst, e.ID[:]...)
	dst = appendTime(dst, e.CreatedAt)
	dst = appendTimeDelta(dst, e.FailedAt, base)
	dst = binary.AppendUvarint(dst, e.FailSeq)
	dst = append(dst, byte(e.Reason))
	if e.Jti == (uuid.UUID{}) {
		dst = append(dst, 0)
	} else {
		dst = append(append(dst, 1), e.Jti[:]...)
	}
	dst = appendTimeDelta(dst, e.DueAt, base)
	dst = appendTimeDelta(dst, e.ExportedAt, base)
	dst = binary.AppendVarint(dst, e.Toe-base/int64(time.Second))
	dst = binary.AppendUvarint(dst, uint64(e.Attempts))
	dst = binary.AppendUvarint(dst, uint64(e.RoundStart))
	if dst, err = refs.appendRef(dst, e.Type); err != nil {
		return dst, err
	}
	dst = appendTxn(dst, e.Txn)
	if dst, err = refs.appendRef(dst, e.Endpoint); err != nil {
		return dst, err
	}
	var tok *tokenScratch
	switch {
	case kept == nil:
		dst = appendPayload(dst, e.Payload)
	case kept.payload != nil:
		dst = append(dst, kept.payload...)
		tok = &kept.tok
	default:
		dst = appendPayload(dst, e.Payload)
		tok = &kept.tok
	}
	if kept != nil && kept.token != nil && e.JWS == "" {
		dst = append(dst, kept.token...)
	} else if dst, err = appendToken(dst, e, refs, tok); err != nil {
		return dst, err
	}
	dst = appendResponse(dst, e.Response, e.CreatedAt)
	rows, implied := e.History, uint64(0)
	if len(rows) > 0 && isFirstRow(rows[0], e.CreatedAt) {
		rows, implied = rows[1:], 1
	}
	dst = binary.AppendUvarint(dst, uint64(len(rows))<<1|implied)
	prev := base
	for _, h := range rows {
		dst = appendTimeDelta(dst, h.At, prev)
		if !h.At.IsZero() {
			prev = h.At.UnixNano()
		}
		dst = append(dst, byte(h.State))
		dst = binary.AppendUvarint(dst, uint64(h.Attempt))
		dst = binary.AppendUvarint(dst, uint64(h.StatusCode))
		dst = appendString(dst, h.Reason)
		dst = append(dst, byte(h.Code))
		switch h.Endpoint {
		case e.Endpoint:
			dst = append(dst, rowEndpointEvent)
		case "":
			dst = append(dst, rowEndpointNone)
		default:
			dst = append(dst, rowEndpointOther)
			if dst, err = refs.appendRef(dst, h.Endpoint); err != nil {
				return dst, err
			}
		}
	}
	dst = appendTimeDelta(dst, e.UpdatedAt, prev) // usually the last row's time
	dst = binary.AppendUvarint(dst, uint64(room))
	return append(dst, make([]byte, room)...), nil
}

// attemptRoom is the room a record of an event that waits for its first
// attempt keeps for what that attempt adds: its token's signature of
// sigLen bytes and about attemptRoomBesides more (the token's other
// parts, the response, two history rows). The attempt then rewrites the
// record at about the same size, in place: without the room every record
// doubles at its first attempt, and the page it is in splits into pages
// of about 70 % fill (TestFullStoreBytesPerEvent measures it).
func attemptRoom(alg string) int {
	sigLen := 64 // ES256 (r and s of 32 bytes) and EdDSA
	if alg == store.AlgRS256 {
		sigLen = 256 // RSA-2048
	}
	return sigLen + attemptRoomBesides
}

const attemptRoomBesides = 40

// isFirstRow reports whether h is the usual first history row of an event
// created at created: awaiting-executing at creation, nothing else.
func isFirstRow(h store.HistoryEntry, created time.Time) bool {
	at := h.At
	h.At = time.Time{}
	return !created.IsZero() && at.Equal(created) && h == store.HistoryEntry{State: store.AwaitingExecuting}
}

// appendTxn appends a txn: a UUID in canonical lower-case text as its 16
// bytes, anything else as text.
func appendTxn(dst []byte, txn string) []byte {
	if len(txn) == 36 {
		if id, err := uuid.Parse(txn); err == nil && id.String() == txn {
			return append(append(dst, txnUUID), id[:]...)
		}
	}
	return appendString(append(dst, txnText), txn)
}

func (d *decoder) txn() string {
	switch d.byte() {
	case txnText:
		return d.string()
	case txnUUID:
		var id uuid.UUID
		copy(id[:], d.take(16))
		return id.String()
	default:
		d.err = errCorrupt
		return ""
	}
}

// appendRef appends s as a reference into the string table: its number,
// or 0 and the string itself when it is too long to intern (or empty).
func (r strRefs) appendRef(dst []byte, s string) ([]byte, error) {
	if s == "" || len(s) > maxInternedLen {
		return appendString(append(dst, 0), s), nil
	}
	id, err := r.t.id(r.tx, s)
	if err != nil {
		return dst, err
	}
	return binary.AppendUvarint(dst, id), nil
}

// appendRefBytes is appendRef of the text of b; a string is made of b
// only when the table does not have it yet.
func (r strRefs) appendRefBytes(dst []byte, b []byte) ([]byte, error) {
	if len(b) > 0 && len(b) <= maxInternedLen {
		if id, ok := r.t.cached(b); ok {
			return binary.AppendUvarint(dst, id), nil
		}
	}
	return r.appendRef(dst, string(b))
}

// ref reads a string written by appendRef.
func (d *decoder) ref() string {
	id := d.uvarint()
	if d.err != nil {
		return ""
	}
	if id == 0 {
		return d.string()
	}
	if d.refs.t == nil {
		d.err = errNoString
		return ""
	}
	s, err := d.refs.t.str(d.refs.tx, id)
	if err != nil {
		d.err = err
	}
	return s
}

// appendTimeDelta appends t as its difference in nanoseconds from base
// (zigzag, plus one), 0 for the zero time.
func appendTimeDelta(dst []byte, t time.Time, base int64) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	delta := t.UnixNano() - base
	return binary.AppendUvarint(dst, uint64(delta<<1^(delta>>63))+1)
}

func (d *decoder) timeDelta(base int64) time.Time {
	v := d.uvarint()
	if v == 0 || d.err != nil {
		return time.Time{}
	}
	z := v - 1
	delta := int64(z>>1) ^ -int64(z&1)
	return time.Unix(0, base+delta).UTC()
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

var errCorrupt = errors.New("corrupt event record")

// decodeEvent decodes a record of any version, reading interned strings
// through refs; every slice in e is a copy.
func decodeEvent(b []byte, e *store.Event, refs strRefs) error {
	return decodeEventKept(b, e, refs, nil)
}

// decodeEventKept is decodeEvent for a rewrite of the record (kept not
// nil): of a version 4 record it keeps the encoded payload and token in
// kept, decodes the event object into kept's buffer (e.Payload is not a
// copy then) and leaves e.JWS empty instead of rebuilding the token; of an
// older record it keeps nothing and decodes all.
func decodeEventKept(b []byte, e *store.Event, refs strRefs, kept *keptParts) error {
	if kept != nil {
		kept.payload, kept.token = nil, nil
	}
	if len(b) < fixedHeaderSize || b[0] < codecVersion1 || b[0] > codecVersion {
		return errCorrupt
	}
	if b[0] < codecVersion {
		return decodeEventV1to3(b, e)
	}
	d := decoder{b: b[offHead4:], refs: refs}
	e.State = store.State(b[offState])
	copy(e.ID[:], b[offID:])
	e.CreatedAt = decodeNanos(b[offCreatedAt:])
	base := nanos(e.CreatedAt)
	e.FailedAt = d.timeDelta(base)
	e.FailSeq = d.uvarint()
	e.Reason = store.ReasonCode(d.byte())
	e.Jti = uuid.UUID{}
	if d.byte() != 0 {
		copy(e.Jti[:], d.take(16))
	}
	e.DueAt = d.timeDelta(base)
	e.ExportedAt = d.timeDelta(base)
	e.Toe = d.varint() + base/int64(time.Second)
	e.Attempts = int(d.uvarint())
	e.RoundStart = int(d.uvarint())
	e.Type = d.ref()
	e.Txn = d.txn()
	e.Endpoint = d.ref()
	if kept == nil {
		e.Payload = d.payload()
		e.JWS = string(d.token(nil, e))
	} else {
		at := d.b
		kept.payloadBuf, e.Payload = d.payloadInto(kept.payloadBuf[:0])
		kept.payload = at[:len(at)-len(d.b)]
		at = d.b
		d.skipToken()
		kept.token = at[:len(at)-len(d.b)]
		e.JWS = ""
	}
	e.Response = d.response(e.CreatedAt)
	rows := d.uvarint()
	n := int(min(rows>>1, uint64(len(d.b))))
	if kept != nil {
		// A rewrite adds an attempt's two rows: the history is decoded
		// into kept's, with room for them.
		e.History = slices.Grow(kept.history[:0], n+int(rows&1)+2)
	} else {
		e.History = make([]store.HistoryEntry, 0, n+int(rows&1))
	}
	if rows&1 == 1 {
		e.History = append(e.History, store.HistoryEntry{At: e.CreatedAt, State: store.AwaitingExecuting})
	}
	prev := base
	for i := 0; i < n && d.err == nil; i++ {
		var h store.HistoryEntry
		h.At = d.timeDelta(prev)
		if !h.At.IsZero() {
			prev = h.At.UnixNano()
		}
		h.State = store.State(d.byte())
		h.Attempt = int(d.uvarint())
		h.StatusCode = int(d.uvarint())
		h.Reason = d.string()
		h.Code = store.ReasonCode(d.byte())
		switch d.byte() {
		case rowEndpointEvent:
			h.Endpoint = e.Endpoint
		case rowEndpointNone:
		case rowEndpointOther:
			h.Endpoint = d.ref()
		default:
			d.err = errCorrupt
		}
		e.History = append(e.History, h)
	}
	if rows>>1 > uint64(n) {
		d.err = errCorrupt
	}
	e.UpdatedAt = d.timeDelta(prev)
	d.take(d.count()) // the room
	return d.err
}

// decodeEventV1to3 decodes a record of version 1, 2 or 3.
func decodeEventV1to3(b []byte, e *store.Event) error {
	version := b[0]
	d := decoder{b: b[2:]}
	e.State = store.State(b[offState])
	copy(e.ID[:], d.take(16))
	e.CreatedAt = d.time()
	e.FailedAt = d.time()
	e.UpdatedAt = d.time()
	e.DueAt = d.time()
	e.ExportedAt = d.time()
	e.FailSeq = d.u64()
	e.Reason, e.Jti = store.ReasonNone, uuid.UUID{}
	if version >= 2 {
		e.Reason = store.ReasonCode(d.byte())
		copy(e.Jti[:], d.take(16))
	}
	e.Toe = d.varint()
	e.Attempts = int(d.uvarint())
	e.RoundStart = int(d.uvarint())
	e.Type = d.string()
	e.Txn = d.string()
	e.Endpoint = d.string()
	e.Payload = d.bytes()
	if version >= 3 {
		e.JWS = string(d.token(nil, e))
	} else {
		e.JWS = d.string()
	}
	e.Response = d.responseV1to3()
	n := d.count()
	e.History = make([]store.HistoryEntry, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		var h store.HistoryEntry
		h.At = d.time()
		h.State = store.State(d.byte())
		h.Attempt = int(d.uvarint())
		h.StatusCode = int(d.uvarint())
		h.Reason = d.string()
		if version >= 2 {
			h.Code = store.ReasonCode(d.byte())
			if version >= 3 {
				h.Endpoint = d.rowEndpoint(e.Endpoint)
			} else {
				h.Endpoint = d.string()
			}
		}
		e.History = append(e.History, h)
	}
	return d.err
}

// recordState reads the state of an encoded record.
func recordState(b []byte) store.State {
	if len(b) < fixedHeaderSize {
		return 0
	}
	return store.State(b[offState])
}

// head4 is what recordHead4 reads of a version 4 record.
type head4 struct {
	failedAt int64 // Unix nanoseconds, 0 when it never failed
	failSeq  uint64
	reason   store.ReasonCode
	rest     []byte // what follows the reason
}

// recordHead4 reads the varint head of a version 4 record after its fixed
// part; false when b is not one.
func recordHead4(b []byte) (h head4, ok bool) {
	if len(b) < fixedHeaderSize || b[0] < codecVersion {
		return h, false
	}
	d := decoder{b: b[offHead4:]}
	if at := d.timeDelta(nanos(decodeNanos(b[offCreatedAt:]))); !at.IsZero() {
		h.failedAt = at.UnixNano()
	}
	h.failSeq = d.uvarint()
	h.reason = store.ReasonCode(d.byte())
	h.rest = d.b
	return h, d.err == nil
}

// recordReason reads the reason code of an encoded record.
func recordReason(b []byte) store.ReasonCode {
	if h, ok := recordHead4(b); ok {
		return h.reason
	}
	if len(b) <= offReason || b[0] < 2 || b[0] >= codecVersion {
		return store.ReasonNone
	}
	return store.ReasonCode(b[offReason])
}

// recordFailSeq reads the failure sequence of an encoded record.
func recordFailSeq(b []byte) uint64 {
	if h, ok := recordHead4(b); ok {
		return h.failSeq
	}
	if len(b) < offFailSeq+8 || b[0] >= codecVersion {
		return 0
	}
	return binary.BigEndian.Uint64(b[offFailSeq:])
}

// recordType reads the event type of a record of version 1 to 3 without
// decoding the rest; nil when the record is too short.
func recordType(b []byte) []byte {
	if len(b) < offFailSeq+8 || b[0] >= codecVersion {
		return nil
	}
	d := decoder{b: b[offFailSeq+8:]}
	if b[0] >= 2 {
		d.take(1 + 16) // reason code, sender's id
	}
	d.varint()  // toe
	d.uvarint() // attempts
	d.uvarint() // round start
	n := d.count()
	if d.err != nil {
		return nil
	}
	t := d.take(n)
	if d.err != nil {
		return nil
	}
	return t
}

// recordTypeRef reads the event type of a version 4 record as written by
// appendRef: its number in the string table, or 0 and the type itself.
func recordTypeRef(b []byte) (id uint64, text []byte, ok bool) {
	h, ok := recordHead4(b)
	if !ok {
		return 0, nil, false
	}
	d := decoder{b: h.rest}
	if d.byte() != 0 {
		d.take(16) // sender's id
	}
	d.uvarint() // dueAt
	d.uvarint() // exportedAt
	d.varint()  // toe
	d.uvarint() // attempts
	d.uvarint() // round start
	if id = d.uvarint(); id == 0 {
		text = d.take(d.count())
	}
	return id, text, d.err == nil
}

// typeMatch selects the records of one event type.
type typeMatch struct {
	text []byte
	id   uint64 // its number in the string table, 0 when it has none
}

func (r strRefs) typeMatch(typ string) typeMatch {
	m := typeMatch{text: []byte(typ)}
	m.id, _ = r.t.lookup(r.tx, typ)
	return m
}

// match reports whether the encoded record b is of m's type.
func (m typeMatch) match(b []byte) bool {
	if len(b) > 0 && b[0] >= codecVersion {
		id, text, ok := recordTypeRef(b)
		if !ok {
			return false
		}
		if id != 0 {
			return id == m.id
		}
		return bytes.Equal(text, m.text)
	}
	return bytes.Equal(recordType(b), m.text)
}

// recordCreatedAt reads the creation time of an encoded record.
func recordCreatedAt(b []byte) time.Time {
	if len(b) < fixedHeaderSize {
		return time.Time{}
	}
	return decodeNanos(b[offCreatedAt:])
}

func appendTime(dst []byte, t time.Time) []byte {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

func decodeNanos(b []byte) time.Time {
	n := int64(binary.BigEndian.Uint64(b))
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst []byte, p []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(p)))
	return append(dst, p...)
}

// appendRowEndpoint appends a history row's endpoint (version 3): 0 when
// it is the event's endpoint, else its length plus one and its bytes.
func appendRowEndpoint(dst []byte, endpoint, eventEndpoint string) []byte {
	if endpoint != "" && endpoint == eventEndpoint {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(endpoint))+1)
	return append(dst, endpoint...)
}

type decoder struct {
	b    []byte
	err  error
	refs strRefs // version 4: the string table
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.err = errCorrupt
		return make([]byte, n&0xffff)
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) byte() byte { return d.take(1)[0] }

func (d *decoder) u64() uint64 { return binary.BigEndian.Uint64(d.take(8)) }

func (d *decoder) time() time.Time { return decodeNanos(d.take(8)) }

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in what is left.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return 0
	}
	return int(n)
}

func (d *decoder) string() string { return string(d.take(d.count())) }

// rowEndpoint reads a history row's endpoint written by appendRowEndpoint.
func (d *decoder) rowEndpoint(eventEndpoint string) string {
	n := d.uvarint()
	if n == 0 {
		return eventEndpoint
	}
	if n-1 > uint64(len(d.b)) {
		d.err = errCorrupt
		return ""
	}
	return string(d.take(int(n - 1)))
}

func (d *decoder) bytes() []byte {
	p := d.take(d.count())
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// recordFailedAtNanos reads the failure time of an encoded record as Unix
// nanoseconds, 0 when it never failed.
func recordFailedAtNanos(b []byte) int64 {
	if h, ok := recordHead4(b); ok {
		return h.failedAt
	}
	if len(b) < fixedHeaderSize || b[0] >= codecVersion {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b[offFailedAt:]))
}

// decodeExportEvent decodes only what an export line needs, without
// copying where the record holds the bytes as they are: x's slices may
// point into b. It reads the record up to the token and skips the
// response and the history.
func decodeExportEvent(b []byte, x *store.ExportEvent, buf *[]byte, refs strRefs) error {
	if len(b) < fixedHeaderSize || b[0] < codecVersion1 || b[0] > codecVersion {
		return errCorrupt
	}
	if b[0] >= codecVersion {
		var e store.Event
		h, ok := recordHead4(b)
		if !ok {
			return errCorrupt
		}
		d := decoder{b: h.rest, refs: refs}
		copy(e.ID[:], b[offID:])
		e.CreatedAt = decodeNanos(b[offCreatedAt:])
		base := nanos(e.CreatedAt)
		if d.byte() != 0 {
			copy(e.Jti[:], d.take(16))
		}
		d.uvarint() // dueAt
		d.uvarint() // exportedAt
		e.Toe = d.varint() + base/int64(time.Second)
		d.uvarint() // attempts
		d.uvarint() // round start
		e.Type = d.ref()
		e.Txn = d.txn()
		e.Endpoint = d.ref()
		e.Payload = d.payload()
		x.ID, x.Jti, x.CreatedAt, x.Toe = e.ID, e.Jti, e.CreatedAt, e.Toe
		x.Type, x.Txn, x.Endpoint, x.Payload = []byte(e.Type), []byte(e.Txn), []byte(e.Endpoint), e.Payload
		*buf = d.token((*buf)[:0], &e)
		x.JWS = *buf
		return d.err
	}
	d := decoder{b: b[2:]}
	copy(x.ID[:], d.take(16))
	x.CreatedAt = d.time()
	d.take(8 * 5) // failedAt, updatedAt, dueAt, exportedAt, failSeq
	x.Jti = uuid.UUID{}
	if b[0] >= 2 {
		d.take(1) // reason
		copy(x.Jti[:], d.take(16))
	}
	x.Toe = d.varint()
	d.uvarint() // attempts
	d.uvarint() // round start
	x.Type = d.take(d.count())
	x.Txn = d.take(d.count())
	x.Endpoint = d.take(d.count())
	x.Payload = d.take(d.count())
	if b[0] < 3 {
		x.JWS = d.take(d.count())
		return d.err
	}
	// A token in parts is rebuilt into *buf, which the caller keeps
	// between calls.
	e := store.Event{ID: x.ID, Jti: x.Jti, CreatedAt: x.CreatedAt, Toe: x.Toe,
		Type: string(x.Type), Txn: string(x.Txn), Endpoint: string(x.Endpoint), Payload: x.Payload}
	*buf = d.token((*buf)[:0], &e)
	x.JWS = *buf
	return d.err
}
