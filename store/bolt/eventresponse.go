package bolt

import (
	"encoding/binary"
	"hookd/store"
	"net/http"
	"time"
)

// The response of an event's last attempt (its status and headers) is
// encoded on its own, so that it can move out of the event record without
// touching the rest of the codec.

// Header kinds: the byte before each response header in a version 4 record.
const (
	headerText = 0 // name and value as they are
	headerDate = 1 // a Date header in HTTP's time format: its seconds from the event's creation
)

// appendResponse appends r (nil: no attempt answered); a Date header
// whose value its seconds rebuild exactly is stored as them, relative to
// base.
func appendResponse(dst []byte, r *store.Response, base time.Time) []byte {
	if r == nil {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(r.StatusCode)+1)
	dst = binary.AppendUvarint(dst, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		if h.Name == "Date" {
			var text [len(http.TimeFormat) + 8]byte // formatted on the stack: no string is made to compare
			if t, err := http.ParseTime(h.Value); err == nil && string(t.UTC().AppendFormat(text[:0], http.TimeFormat)) == h.Value {
				dst = append(dst, headerDate)
				dst = binary.AppendVarint(dst, t.Unix()-base.Unix())
				continue
			}
		}
		dst = append(dst, headerText)
		dst = appendString(dst, h.Name)
		dst = appendString(dst, h.Value)
	}
	return dst
}

// response reads a response written by appendResponse.
func (d *decoder) response(base time.Time) *store.Response {
	status := d.uvarint()
	if status == 0 || d.err != nil {
		return nil
	}
	r := &store.Response{StatusCode: int(status - 1)}
	n := d.count()
	r.Headers = make([]store.Header, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		switch d.byte() {
		case headerText:
			r.Headers = append(r.Headers, store.Header{Name: d.string(), Value: d.string()})
		case headerDate:
			at := time.Unix(base.Unix()+d.varint(), 0).UTC()
			r.Headers = append(r.Headers, store.Header{Name: "Date", Value: at.Format(http.TimeFormat)})
		default:
			d.err = errCorrupt
		}
	}
	return r
}

// responseV1to3 reads the response of a record of version 1 to 3.
func (d *decoder) responseV1to3() *store.Response {
	status := d.uvarint()
	if status == 0 || d.err != nil {
		return nil
	}
	r := &store.Response{StatusCode: int(status - 1)}
	n := d.count()
	r.Headers = make([]store.Header, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		r.Headers = append(r.Headers, store.Header{Name: d.string(), Value: d.string()})
	}
	return r
}
