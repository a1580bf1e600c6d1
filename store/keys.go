package store

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// u64 encodes v big-endian.
func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// timeKey encodes t as big-endian Unix nanoseconds; times before 1970 clamp to 0.
func timeKey(t time.Time) []byte {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	return u64(uint64(n))
}

func decodeTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
}

// join concatenates key parts into a new slice.
func join(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// EventID builds the public id of the event with sequence number seq: a
// version-8 UUID whose first six bytes are the sequence number and whose
// remaining bits are random. The random part keeps ids unguessable; the
// sequence part finds the record without an index.
func EventID(seq uint64, random [10]byte) uuid.UUID {
	var id uuid.UUID
	id[0] = byte(seq >> 40)
	id[1] = byte(seq >> 32)
	id[2] = byte(seq >> 24)
	id[3] = byte(seq >> 16)
	id[4] = byte(seq >> 8)
	id[5] = byte(seq)
	copy(id[6:], random[:])
	id[6] = 0x80 | id[6]&0x0f // version 8
	id[8] = 0x80 | id[8]&0x3f // RFC 4122 variant
	return id
}

// EventSeq extracts the sequence number from an id made by EventID.
func EventSeq(id uuid.UUID) uint64 {
	return uint64(id[0])<<40 | uint64(id[1])<<32 | uint64(id[2])<<24 |
		uint64(id[3])<<16 | uint64(id[4])<<8 | uint64(id[5])
}
