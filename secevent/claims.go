// Package secevent encodes the claims of the Security Event Tokens
// (RFC 8417) hookd signs. The dispatcher signs these bytes and an export
// line is these bytes, so both build them here: an exported event reads
// byte for byte as the token's payload it was, or would have been,
// delivered with.
package secevent

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Claims are the claims of a Security Event Token for one event delivered
// to one endpoint.
type Claims struct {
	// Issuer is "iss": <public-url>/{customerId}/webhooks.
	Issuer string
	// IssuedAt is "iat", in seconds since the Unix epoch.
	IssuedAt int64
	// ID is "jti", stable across retries of the same event.
	ID string
	// Audience is "aud": the endpoint.
	Audience []string
	// Txn is "txn", omitted when empty.
	Txn string
	// TimeOfEvent is "toe", in seconds since the Unix epoch.
	TimeOfEvent int64
	// EventType is the single key of "events".
	EventType string
	// Event is the event object, compact valid JSON inserted as is; empty
	// is written as {}.
	Event json.RawMessage
}

// AppendClaims appends the compact JSON of c to dst and returns the
// extended slice. The members are always in this order:
//
//	{"iss":..,"iat":..,"jti":..,"aud":[..],"txn":..,"toe":..,"events":{"<EventType>":<Event>}}
//
// with "txn" left out when empty, so equal claims give equal bytes. Strings
// are JSON-escaped (not HTML-escaped); Event is copied verbatim. It does not
// allocate when dst has room.
func AppendClaims(dst []byte, c Claims) []byte {
	dst = append(dst, `{"iss":`...)
	dst = AppendJSONString(dst, c.Issuer)
	dst = append(dst, `,"iat":`...)
	dst = strconv.AppendInt(dst, c.IssuedAt, 10)
	dst = append(dst, `,"jti":`...)
	dst = AppendJSONString(dst, c.ID)
	dst = append(dst, `,"aud":[`...)
	for i, a := range c.Audience {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, a)
	}
	dst = append(dst, ']')
	if c.Txn != "" {
		dst = append(dst, `,"txn":`...)
		dst = AppendJSONString(dst, c.Txn)
	}
	dst = append(dst, `,"toe":`...)
	dst = strconv.AppendInt(dst, c.TimeOfEvent, 10)
	dst = append(dst, `,"events":{`...)
	dst = AppendJSONString(dst, c.EventType)
	dst = append(dst, ':')
	if len(c.Event) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, c.Event...)
	}
	return append(dst, "}}"...)
}

// jsonSafe reports the ASCII bytes that need no escaping in a JSON string.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, U+2028 and U+2029 escaped for JavaScript,
// invalid UTF-8 replaced by U+FFFD.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
