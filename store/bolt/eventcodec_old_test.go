package bolt

import (
	"encoding/binary"
	"hookd/store"
	"testing"
)

// Encoders of the record versions hookd wrote before version 4, for the
// tests that read them.

// appendEventV3 encodes e as hookd wrote records of version 3.
func appendEventV3(dst []byte, e *store.Event) []byte {
	dst = append(dst, codecVersion3, byte(e.State))
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
	dst = appendTokenV3(dst, e)
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

// appendTokenV3 appends e's token as version 3 did: its parts, the header
// and issuer as text, when they rebuild it exactly, else the whole token.
func appendTokenV3(dst []byte, e *store.Event) []byte {
	if e.JWS == "" {
		return append(dst, tokenNone)
	}
	if header, issuer, sig, ok := splitToken(e); ok {
		dst = append(dst, tokenParts)
		dst = appendString(dst, header)
		dst = appendString(dst, issuer)
		return appendBytes(dst, sig)
	}
	dst = append(dst, tokenWhole)
	return appendString(dst, e.JWS)
}

// codecRefs returns the string table of a new store in a write
// transaction that ends with the test.
func codecRefs(t testing.TB) strRefs {
	t.Helper()
	db := openTestDB(t)
	tx, err := db.bolt.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	return db.refs(tx)
}

// encode encodes e in the current version.
func encode(t testing.TB, e *store.Event, refs strRefs) []byte {
	t.Helper()
	b, err := appendEvent(nil, e, refs, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
