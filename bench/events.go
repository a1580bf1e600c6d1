package main

import (
	"strconv"
	"time"
)

// mix is the splitmix64 finalizer: distinct inputs give unrelated outputs.
func mix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

const hexDigits = "0123456789abcdef"

// appendUUID appends a random-looking version 4 UUID derived from n and
// salt, so that the events compress like real ones.
func appendUUID(dst []byte, n, salt int) []byte {
	hi := mix(uint64(n)<<8 | uint64(salt&0xff))
	lo := mix(hi)
	var b [16]byte
	for i := range 8 {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// appendEventObject appends the event object of event i: the members
// the intake requires and the changed attributes, plus, when seq >= 0, the
// send time (since the harness's base) and the sequence number that the
// listeners of the latency phases read back from the token.
func appendEventObject(dst []byte, i int, entityType string, sent time.Duration, seq int64) []byte {
	dst = append(dst, `{"captureApplicationId":"`...)
	dst = appendUUID(dst, i%7, 1)
	dst = append(dst, `","captureClientId":"identity-admin-ui","entityType":"`...)
	dst = append(dst, entityType...)
	dst = append(dst, `","globalSub":"`...)
	dst = appendUUID(dst, i, 2)
	dst = append(dst, `","sub":"`...)
	dst = appendUUID(dst, i, 3)
	dst = append(dst, `","attributes":["/profile/email","/profile/name/given"]`...)
	if seq >= 0 {
		dst = append(dst, `,"benchSent":`...)
		dst = strconv.AppendInt(dst, int64(sent), 10)
		dst = append(dst, `,"benchSeq":`...)
		dst = strconv.AppendInt(dst, seq, 10)
	}
	return append(dst, '}')
}

// appendIntakeLine appends one intake event line (without newline):
// {"type":"entityUpdated","event":{...},"txn":"...","toe":...}.
func appendIntakeLine(dst []byte, i int, entityType string, sent time.Duration, seq int64) []byte {
	dst = append(dst, `{"type":"entityUpdated","event":`...)
	dst = appendEventObject(dst, i, entityType, sent, seq)
	dst = append(dst, `,"txn":"`...)
	dst = appendUUID(dst, i, 4)
	dst = append(dst, `","toe":`...)
	dst = strconv.AppendInt(dst, 1763800000+int64(i%86400), 10)
	return append(dst, '}')
}

// ndjsonBatch returns n intake lines starting at event from, each ending
// in a newline.
func ndjsonBatch(from, n int, entityType string) []byte {
	b := make([]byte, 0, n*400)
	for i := from; i < from+n; i++ {
		b = appendIntakeLine(b, i, entityType, 0, -1)
		b = append(b, '\n')
	}
	return b
}
