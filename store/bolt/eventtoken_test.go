package bolt

import (
	"bytes"
	"crypto/rand"
	"hookd/store"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// tokenFor returns a compact token of e's claims signed (for the codec,
// any bytes are a signature) by issuer with a header of alg and a
// signature of sigLen random bytes.
func tokenFor(t testing.TB, e *store.Event, issuer, alg string, sigLen int) string {
	t.Helper()
	sig := make([]byte, sigLen)
	if _, err := rand.Read(sig); err != nil {
		t.Fatal(err)
	}
	header := b64.EncodeToString([]byte(`{"alg":"` + alg + `","kid":"Q8xk2lW0x4mBp1d3vS7nJd2k0b5cQm8yT4wZr9aHs1E","typ":"secevent+jwt"}`))
	return header + "." + b64.EncodeToString(store.AppendEventClaims(nil, e, issuer, e.Endpoint)) + "." + b64.EncodeToString(sig)
}

// tokenEvent is an event the size of the benchmark's, sent once.
func tokenEvent() store.Event {
	e := codecSample()
	e.Payload = []byte(`{"entityType":"user","sub":"` + uuid.NewString() + `","globalSub":"` + uuid.NewString() + `","changedAttributes":["mail","givenName","sn"],"txn":"` + uuid.NewString() + `"}`)
	e.State, e.DueAt, e.Reason = store.Success, e.DueAt.AddDate(0, 0, 0), store.ReasonNone
	return e
}

// roundTrip encodes e and checks that the record and its export view give
// back e's token byte for byte; it returns the record.
func roundTrip(t *testing.T, e *store.Event, refs strRefs) []byte {
	t.Helper()
	rec := encode(t, e, refs)
	var got store.Event
	if err := decodeEvent(rec, &got, refs); err != nil {
		t.Fatal(err)
	}
	if got.JWS != e.JWS {
		t.Errorf("decoded token:\ngot  %s\nwant %s", got.JWS, e.JWS)
	}
	var x store.ExportEvent
	if err := decodeExportEvent(rec, &x, new([]byte), refs); err != nil {
		t.Fatal(err)
	}
	if string(x.JWS) != e.JWS || string(x.Endpoint) != e.Endpoint || !bytes.Equal(x.Payload, e.Payload) || string(x.Txn) != e.Txn {
		t.Errorf("export view of the token:\ngot  %s\nwant %s", x.JWS, e.JWS)
	}
	return rec
}

// tokenKind returns the kind byte of rec's token.
func tokenKind(t *testing.T, rec []byte, refs strRefs) byte {
	t.Helper()
	bare := store.Event{}
	if err := decodeEvent(rec, &bare, refs); err != nil {
		t.Fatal(err)
	}
	bare.JWS, bare.Response, bare.History, bare.UpdatedAt = "", nil, nil, time.Time{}
	prefix := encode(t, &bare, refs)
	return rec[len(prefix)-5] // no token (0), no response (0), no history (0), no updatedAt (0), no room (0)
}

// TestEventTokenStoredInParts: a token made of the event's claims is
// stored as header, issuer and raw signature, rebuilt byte for byte when
// read, for every algorithm's signature size, with and without txn and
// sender's id; the record is smaller than with the whole token by about
// the token's base64 of the claims.
func TestEventTokenStoredInParts(t *testing.T) {
	refs := codecRefs(t)
	for _, tc := range []struct {
		alg    string
		sigLen int
		change func(*store.Event)
	}{
		{"EdDSA", 64, nil},
		{"ES256", 64, func(e *store.Event) { e.Txn = "" }},
		{"RS256", 256, func(e *store.Event) { e.Jti = uuid.UUID{} }},
		{"EdDSA", 64, func(e *store.Event) { e.Payload = nil; e.Type = "test" }},
	} {
		e := tokenEvent()
		if tc.change != nil {
			tc.change(&e)
		}
		issuer := "https://hooks.example/" + uuid.NewString() + "/webhooks"
		e.JWS = tokenFor(t, &e, issuer, tc.alg, tc.sigLen)
		rec := roundTrip(t, &e, refs)
		if k := tokenKind(t, rec, refs); k != tokenRefs {
			t.Errorf("%s: got token kind %d, want %d (parts, header and issuer in the string table)", tc.alg, k, tokenRefs)
		}
		whole := appendEventV2(&e)
		// The header and the claims' base64 are saved, less a few bytes
		// of numbers and lengths (the signature is raw: a third smaller
		// than its base64).
		parts := strings.Split(e.JWS, ".")
		want := len(parts[0]) + len(parts[1]) - 8
		if saved := len(whole) - len(rec); saved < want {
			t.Errorf("%s: record of %d bytes, %d with the whole token: saved %d, want at least %d", tc.alg, len(rec), len(whole), saved, want)
		}
	}
}

// TestEventTokenStoredWhole: a token that the parts would not rebuild
// exactly is stored whole and read back unchanged.
func TestEventTokenStoredWhole(t *testing.T) {
	refs := codecRefs(t)
	for name, make := range map[string]func(t *testing.T, e *store.Event) string{
		"not a token":  func(*testing.T, *store.Event) string { return "a.b.c" },
		"two segments": func(*testing.T, *store.Event) string { return "eyJhIjoxfQ.eyJhIjoxfQ" },
		"header not base64": func(t *testing.T, e *store.Event) string {
			tok := tokenFor(t, e, "https://hooks.example/c/webhooks", "EdDSA", 64)
			return "e*" + tok[strings.IndexByte(tok, '.'):]
		},
		"audience another endpoint": func(t *testing.T, e *store.Event) string {
			other := *e
			other.Endpoint = "https://other.example/h"
			return tokenFor(t, &other, "https://hooks.example/c/webhooks", "EdDSA", 64)
		},
		"issuer with an escape": func(t *testing.T, e *store.Event) string {
			return tokenFor(t, e, "https://hooks.example/\u2028/webhooks", "EdDSA", 64)
		},
		"claims not first iss": func(t *testing.T, e *store.Event) string {
			tok := tokenFor(t, e, "https://hooks.example/c/webhooks", "EdDSA", 64)
			parts := strings.Split(tok, ".")
			return parts[0] + "." + b64.EncodeToString([]byte(`{"iat":1}`)) + "." + parts[2]
		},
		"signature not canonical base64": func(t *testing.T, e *store.Event) string {
			tok := tokenFor(t, e, "https://hooks.example/c/webhooks", "EdDSA", 64)
			// 64 bytes encode to 86 characters whose last carries 4
			// padding bits: a set bit decodes, leniently, to the same bytes.
			last := tok[len(tok)-1]
			i := strings.IndexByte(b64Alphabet, last)
			return tok[:len(tok)-1] + string(b64Alphabet[i|1])
		},
	} {
		e := tokenEvent()
		e.JWS = make(t, &e)
		rec := roundTrip(t, &e, refs)
		if k := tokenKind(t, rec, refs); k != tokenWhole {
			t.Errorf("%s: got token kind %d, want %d (whole)", name, k, tokenWhole)
		}
	}
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestEventCodecReadsVersion2: a version 2 record, its token whole, reads
// as the event it was, and is written in parts when written again.
func TestEventCodecReadsVersion2(t *testing.T) {
	refs := codecRefs(t)
	e := tokenEvent()
	e.JWS = tokenFor(t, &e, "https://hooks.example/c/webhooks", "RS256", 256)
	v2 := appendEventV2(&e)
	var got store.Event
	if err := decodeEvent(v2, &got, refs); err != nil {
		t.Fatal(err)
	}
	if got.JWS != e.JWS || !bytes.Equal(got.Payload, e.Payload) || got.Endpoint != e.Endpoint || len(got.History) != len(e.History) {
		t.Errorf("decoded version 2 event: got %+v, want %+v", got, e)
	}
	var x store.ExportEvent
	if err := decodeExportEvent(v2, &x, new([]byte), refs); err != nil || string(x.JWS) != e.JWS {
		t.Errorf("export view of a version 2 record: got token %q, err %v", x.JWS, err)
	}
	if rec := roundTrip(t, &got, refs); tokenKind(t, rec, refs) != tokenRefs || len(rec) >= len(v2) {
		t.Errorf("rewritten version 2 record: kind %d, %d bytes (version 2: %d), want parts and smaller", tokenKind(t, rec, refs), len(rec), len(v2))
	}
}
