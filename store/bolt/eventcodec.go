package bolt

import (
	"encoding/binary"
	"errors"
	"hookd/store"
	"time"

	"github.com/google/uuid"
)

// Record versions: version 1 and 2 records are still read; every write is
// in the current version. Version 2 adds the event's reason code (a byte at
// offReason) and the sender's id (16 bytes after it, zero when none), and
// each history row's code and endpoint. Version 3 stores the token in
// parts (eventtoken.go) instead of whole: a kind byte, then the parts or
// the whole token; and a history row's endpoint as its length plus one, 0
// standing for the event's endpoint (the usual case: that of its token).
const (
	codecVersion1   = 1
	codecVersion2   = 2
	codecVersion    = 3
	offState        = 1
	offID           = 2
	offCreatedAt    = 18
	offFailedAt     = 26
	fixedHeaderSize = 34
	offFailSeq      = 58 // after updatedAt, dueAt and exportedAt
	offReason       = 66 // version 2: after failSeq
)

// appendEvent encodes e. The fixed header (version, state, id, createdAt,
// failedAt) lets scans filter without decoding the rest.
func appendEvent(dst []byte, e *store.Event) []byte {
	dst = append(dst, codecVersion, byte(e.State))
	dst = append(dst, e.ID[:]...)
	dst = appendTime(dst, e.CreatedAt)
	dst = appendTime(dst, e.FailedAt)
	dst = appendTime(dst, e.UpdatedAt)
	dst = appendTime(dst, e.DueAt)
	dst = appendTime(dst, e.ExportedAt)
	dst = binary.BigEndian.AppendUint64(dst, e.FailSeq)
	dst = append(dst, byte(e.Reason))
	dst = append(dst, e.Jti[:]...)
	dst = binary.AppendVarint(dst, e.Toe)
	dst = binary.AppendUvarint(dst, uint64(e.Attempts))
	dst = binary.AppendUvarint(dst, uint64(e.RoundStart))
	dst = appendString(dst, e.Type)
	dst = appendString(dst, e.Txn)
	dst = appendString(dst, e.Endpoint)
	dst = appendBytes(dst, e.Payload)
	dst = appendToken(dst, e)
	if e.Response == nil {
		dst = binary.AppendUvarint(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(e.Response.StatusCode)+1)
		dst = binary.AppendUvarint(dst, uint64(len(e.Response.Headers)))
		for _, h := range e.Response.Headers {
			dst = appendString(dst, h.Name)
			dst = appendString(dst, h.Value)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.History)))
	for _, h := range e.History {
		dst = appendTime(dst, h.At)
		dst = append(dst, byte(h.State))
		dst = binary.AppendUvarint(dst, uint64(h.Attempt))
		dst = binary.AppendUvarint(dst, uint64(h.StatusCode))
		dst = appendString(dst, h.Reason)
		dst = append(dst, byte(h.Code))
		dst = appendRowEndpoint(dst, h.Endpoint, e.Endpoint)
	}
	return dst
}

var errCorrupt = errors.New("corrupt event record")

// decodeEvent decodes a record; every slice in e is a copy.
func decodeEvent(b []byte, e *store.Event) error {
	if len(b) < fixedHeaderSize || b[0] < codecVersion1 || b[0] > codecVersion {
		return errCorrupt
	}
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
	e.Response = nil
	if status := d.uvarint(); status > 0 {
		r := &store.Response{StatusCode: int(status - 1)}
		n := d.count()
		r.Headers = make([]store.Header, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			r.Headers = append(r.Headers, store.Header{Name: d.string(), Value: d.string()})
		}
		e.Response = r
	}
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

// recordReason reads the reason code of an encoded record.
func recordReason(b []byte) store.ReasonCode {
	if len(b) <= offReason || b[0] < 2 {
		return store.ReasonNone
	}
	return store.ReasonCode(b[offReason])
}

// recordFailSeq reads the failure sequence of an encoded record.
func recordFailSeq(b []byte) uint64 {
	if len(b) < offFailSeq+8 {
		return 0
	}
	return binary.BigEndian.Uint64(b[offFailSeq:])
}

// recordType reads the event type of an encoded record without decoding
// the rest; nil when the record is too short.
func recordType(b []byte) []byte {
	if len(b) < offFailSeq+8 {
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
	b   []byte
	err error
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
	if len(b) < fixedHeaderSize {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b[offFailedAt:]))
}

// decodeExportEvent decodes only what an export line needs, without
// copying: x's slices point into b. It reads the record up to the token
// and skips the response and the history.
func decodeExportEvent(b []byte, x *store.ExportEvent, buf *[]byte) error {
	if len(b) < fixedHeaderSize || b[0] < codecVersion1 || b[0] > codecVersion {
		return errCorrupt
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
