package bolt

import (
	"bytes"
	"encoding/hex"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/klauspost/compress/s2"
)

// An event object is stored compressed (record version 4): every UUID in
// its canonical lower-case text is first replaced by a mark and its 16
// bytes (identifiers are most of an event object, and a compressor keeps
// their 36 characters as they are in so short an input), then the whole is
// compressed with S2 and a small dictionary made of the documented event
// object: its member names and the values every deployment shares. Event
// objects are a few hundred bytes, too short for a compressor to find
// repeats of their own; with the dictionary the names cost a few bytes
// each. The bench's 271-byte object with three UUIDs becomes 100 bytes.
// klauspost/compress is already hookd's zstd (exports); its S2 takes a
// dictionary without training and compresses such an object in a few
// microseconds. zstd with the same dictionary saves a few more bytes
// (about 96) but costs two to three times the CPU: it resets its tables
// for every object, and after the UUIDs are packed what is left for its
// entropy coding are raw bytes.
//
// A dictionary's content never changes once records use it: a different
// one takes its own payload kind.

// Payload kinds: the byte before the payload in a version 4 record.
const (
	payloadRaw = 0 // the bytes as they are
	payloadS2  = 1 // the UUIDs packed (packUUIDs), then an S2 block with payloadDict
)

// uuidMark stands for a UUID's text in a packed payload, followed by its
// 16 bytes. JSON text holds no 0x00 byte (a string escapes control
// characters); a payload that does is stored raw.
const uuidMark = 0

// packUUIDs appends p with every UUID in canonical lower-case text
// replaced by uuidMark and its bytes.
func packUUIDs(dst, p []byte) []byte {
	for i := 0; i < len(p); {
		if i+36 <= len(p) && p[i+8] == '-' && p[i+13] == '-' && p[i+18] == '-' && p[i+23] == '-' {
			if id, err := uuid.ParseBytes(p[i : i+36]); err == nil && string(p[i:i+36]) == id.String() {
				dst = append(append(dst, uuidMark), id[:]...)
				i += 36
				continue
			}
		}
		dst = append(dst, p[i])
		i++
	}
	return dst
}

// unpackUUIDs reverses packUUIDs; false when a mark lacks its bytes.
func unpackUUIDs(dst, p []byte) ([]byte, bool) {
	for i := 0; i < len(p); i++ {
		if p[i] != uuidMark {
			dst = append(dst, p[i])
			continue
		}
		if i+17 > len(p) {
			return dst, false
		}
		dst = appendUUIDText(dst, uuid.UUID(p[i+1:i+17]))
		i += 16
	}
	return dst, true
}

// payloadDict is the dictionary of payloadS2: event objects in the
// shape the intake takes (SPEC: captureApplicationId, captureClientId,
// entityType, globalSub, sub, attributes), the most common text last.
const payloadDict = `{"captureApplicationId":"","captureClientId":"","entityType":"organization","globalSub":"capture-v1://","sub":""}` +
	`{"captureApplicationId":"","captureClientId":"","entityType":"user","globalSub":"capture-v1://","sub":"","attributes":["/profile/email","/profile/name/given","/profile/name/family","email","givenName","familyName","displayName"]}` +
	`{"captureApplicationId":"","captureClientId":"","entityType":"user","globalSub":"capture-v1://","sub":"","attributes":["`

// minCompressed is the shortest payload worth compressing.
const minCompressed = 32

// maxPayloadDecoded bounds what a stored block may decode to: the largest
// event object the intake takes (--max-event-size at most 64 MiB).
const maxPayloadDecoded = 64 << 20

// payloadDictS2 is payloadDict as S2 takes it; the first match it tries
// is the start of an event object.
var payloadDictS2 = sync.OnceValue(func() *s2.Dict {
	return s2.MakeDictManual([]byte(payloadDict), uint16(strings.LastIndex(payloadDict, `{"captureApplicationId":"`)))
})

// appendPayload appends p compressed when that is shorter, else as it is.
func appendPayload(dst, p []byte) []byte {
	if len(p) >= minCompressed && bytes.IndexByte(p, uuidMark) < 0 {
		block := payloadDictS2().Encode(nil, packUUIDs(make([]byte, 0, len(p)), p))
		if len(block) < len(p) {
			dst = append(dst, payloadS2)
			return appendBytes(dst, block)
		}
	}
	dst = append(dst, payloadRaw)
	return appendBytes(dst, p)
}

// payload reads a payload written by appendPayload; the result is a copy
// of its own size. An event object of up to payloadStack bytes is
// decoded on the stack first.
func (d *decoder) payload() []byte {
	var stack [payloadStack]byte
	_, p := d.payloadInto(stack[:0])
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// payloadStack is the room payload decodes in on the stack: the packed
// object and its text, each up to a kilobyte.
const payloadStack = 4 << 10

// payloadInto reads a payload written by appendPayload into buf (from
// its length on) and returns buf grown and the payload, nil when empty.
// S2 decodes the block into buf's spare room and the UUIDs are unpacked
// after it, so a buf reused from one record to the next stops allocating
// once it has room for the largest.
func (d *decoder) payloadInto(buf []byte) (grown, p []byte) {
	switch d.byte() {
	case payloadRaw:
		raw := d.take(d.count())
		if len(raw) == 0 || d.err != nil {
			return buf, nil
		}
		start := len(buf)
		buf = append(buf, raw...)
		return buf, buf[start:]
	case payloadS2:
		block := d.take(d.count())
		if d.err != nil {
			return buf, nil
		}
		n, err := s2.DecodedLen(block)
		if err != nil || n > maxPayloadDecoded {
			d.err = errCorrupt
			return buf, nil
		}
		start := len(buf)
		buf = slices.Grow(buf, n+n+n/2)
		packed, err := payloadDictS2().Decode(buf[start:start+n], block)
		if err != nil {
			d.err = errCorrupt
			return buf, nil
		}
		// The unpacked text goes after the packed bytes, which it outgrows.
		at := start + len(packed)
		var ok bool
		buf, ok = unpackUUIDs(buf[:at], packed)
		if !ok || len(buf) == at {
			d.err = errCorrupt
			return buf, nil
		}
		return buf, buf[at:]
	default:
		d.err = errCorrupt
		return buf, nil
	}
}

// appendUUIDText appends id in its canonical lower-case text, as
// id.String() gives it, without making a string.
func appendUUIDText(dst []byte, id uuid.UUID) []byte {
	dst = hex.AppendEncode(dst, id[:4])
	dst = hex.AppendEncode(append(dst, '-'), id[4:6])
	dst = hex.AppendEncode(append(dst, '-'), id[6:8])
	dst = hex.AppendEncode(append(dst, '-'), id[8:10])
	return hex.AppendEncode(append(dst, '-'), id[10:])
}
