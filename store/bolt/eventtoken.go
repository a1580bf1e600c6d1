package bolt

import (
	"bytes"
	"encoding/base64"
	"hookd/store"
	"strings"
)

// An event's token is stored in parts (record version 3): its claims are
// made of the event's own fields (iat its creation time, jti, the endpoint
// as audience, txn, toe, the type and the payload) and its issuer, so a
// record keeps the token's protected header (its base64 text), the issuer
// and the raw signature (both decoded from their base64), and rebuilds the
// compact token, byte for byte,
// when the record is read. This keeps a token's 4/3 base64 copy of the
// payload out of every record: an EdDSA token is about 940 bytes of which
// about 160 are stored. A token that the parts would not rebuild exactly
// (one whose claims are not those of the event, or not in the canonical
// base64 of RFC 7515) is stored whole, as in version 2, so every reader
// gets the bytes that were sent.
//
// Version 4 keeps the header and the issuer in the file's string table
// (strtable.go): they are the same for every token of a signing key and a
// customer, and the record holds their numbers.

// Token kinds: the byte before the token in a version 3 record.
const (
	tokenNone  = 0 // never signed
	tokenWhole = 1 // the compact token as it is
	tokenParts = 2 // protected header, issuer, signature: the header and signature decoded (version 3)
	tokenRefs  = 3 // as tokenParts with the header and issuer as string table numbers (version 4)
)

// b64 is the base64url without padding of JOSE; strict, so that a
// decoded segment encodes back to the same text.
var b64 = base64.RawURLEncoding.Strict()

// appendToken appends e's token: its parts when they rebuild it exactly,
// else the whole token. sc (nil for none) holds the buffers of the check,
// kept from one token to the next.
func appendToken(dst []byte, e *store.Event, refs strRefs, sc *tokenScratch) ([]byte, error) {
	if e.JWS == "" {
		return append(dst, tokenNone), nil
	}
	if sc == nil {
		sc = new(tokenScratch)
	}
	if header, issuer, sig, ok := splitTokenInto(e, sc); ok {
		var err error
		dst = append(dst, tokenRefs)
		if dst, err = refs.appendRefBytes(dst, header); err != nil {
			return dst, err
		}
		if dst, err = refs.appendRefBytes(dst, issuer); err != nil {
			return dst, err
		}
		return appendBytes(dst, sig), nil
	}
	dst = append(dst, tokenWhole)
	return appendString(dst, e.JWS), nil
}

// tokenScratch holds splitTokenInto's decoded parts and rebuilt claims.
type tokenScratch struct {
	text, header, claims, rebuilt, sig []byte
}

// splitToken returns the parts of e's token (the header and signature
// decoded), and whether they rebuild it exactly from e's fields: strict
// base64 decodes only the canonical text, which encodes back the same.
func splitToken(e *store.Event) (header, issuer string, sig []byte, ok bool) {
	var sc tokenScratch
	h, iss, sig, ok := splitTokenInto(e, &sc)
	return string(h), string(iss), sig, ok
}

// splitTokenInto is splitToken with the parts in sc's buffers.
func splitTokenInto(e *store.Event, sc *tokenScratch) (header, issuer, sig []byte, ok bool) {
	i := strings.IndexByte(e.JWS, '.')
	j := strings.LastIndexByte(e.JWS, '.')
	if i < 0 || j <= i {
		return nil, nil, nil, false
	}
	headerText, payload, sigText := e.JWS[:i], e.JWS[i+1:j], e.JWS[j+1:]
	// Each segment is copied into sc.text first: base64 decodes bytes,
	// and converting the string would allocate a copy each time.
	var err error
	sc.text = append(sc.text[:0], headerText...)
	if sc.header, err = b64.AppendDecode(sc.header[:0], sc.text); err != nil {
		return nil, nil, nil, false
	}
	sc.text = append(sc.text[:0], payload...)
	if sc.claims, err = b64.AppendDecode(sc.claims[:0], sc.text); err != nil {
		return nil, nil, nil, false
	}
	claims := sc.claims
	// The issuer is the claims' first member: {"iss":"<issuer>",...; an
	// issuer with escapes is left to the whole token.
	const issPrefix = `{"iss":"`
	if !bytes.HasPrefix(claims, []byte(issPrefix)) {
		return nil, nil, nil, false
	}
	end := bytes.IndexByte(claims[len(issPrefix):], '"')
	if end < 0 {
		return nil, nil, nil, false
	}
	iss := claims[len(issPrefix) : len(issPrefix)+end]
	if bytes.IndexByte(iss, '\\') >= 0 {
		return nil, nil, nil, false
	}
	sc.rebuilt = store.AppendEventClaims(sc.rebuilt[:0], e, string(iss), e.Endpoint)
	if !bytes.Equal(sc.rebuilt, claims) {
		return nil, nil, nil, false
	}
	sc.text = append(sc.text[:0], sigText...)
	if sc.sig, err = b64.AppendDecode(sc.sig[:0], sc.text); err != nil {
		return nil, nil, nil, false
	}
	return sc.header, iss, sc.sig, true
}

// skipToken reads past a token written by appendToken without rebuilding
// it.
func (d *decoder) skipToken() {
	switch kind := d.byte(); kind {
	case tokenNone:
	case tokenWhole:
		d.take(d.count())
	case tokenParts:
		d.take(d.count()) // header
		d.take(d.count()) // issuer
		d.take(d.count()) // signature
	case tokenRefs:
		d.skipRef() // header
		d.skipRef() // issuer
		d.take(d.count())
	default:
		d.err = errCorrupt
	}
}

// decodeToken reads the token of a version 3 record into dst (appended),
// rebuilding it from its parts and e's fields, which are decoded before it.
func (d *decoder) token(dst []byte, e *store.Event) []byte {
	switch kind := d.byte(); kind {
	case tokenNone:
		return dst
	case tokenWhole:
		return append(dst, d.take(d.count())...)
	case tokenParts:
		header := d.take(d.count())
		issuer := d.take(d.count())
		return d.tokenFromParts(dst, e, header, string(issuer))
	case tokenRefs:
		header := d.ref()
		issuer := d.ref()
		return d.tokenFromParts(dst, e, []byte(header), issuer)
	default:
		d.err = errCorrupt
		return dst
	}
}

// tokenFromParts reads the signature and appends the compact token of
// header, e's claims with issuer, and the signature.
func (d *decoder) tokenFromParts(dst []byte, e *store.Event, header []byte, issuer string) []byte {
	sig := d.take(d.count())
	if d.err != nil {
		return dst
	}
	dst = b64.AppendEncode(dst, header)
	dst = append(dst, '.')
	dst = b64.AppendEncode(dst, store.AppendEventClaims(nil, e, issuer, e.Endpoint))
	dst = append(dst, '.')
	return b64.AppendEncode(dst, sig)
}
