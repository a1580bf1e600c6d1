package jobs

import (
	"bytes"
	"encoding/base64"
	"slices"

	"github.com/google/uuid"

	"hookd/secevent"
	"hookd/store"
)

// lineBuilder turns events into export lines: the claims of each event's
// Security Event Token, one compact JSON object per line. An event that was
// signed gives the claims exactly as signed (the token's payload); one that
// never was gives the claims it would have been signed with.
type lineBuilder struct {
	buf    []byte
	lines  int64
	claims secevent.Claims
	aud    [1]string
	// The last type and endpoint seen, reused while they repeat.
	typ, endpoint string
}

func newLineBuilder(publicURL string, customer uuid.UUID) *lineBuilder {
	b := &lineBuilder{}
	b.claims.Issuer = publicURL + "/" + customer.String() + "/webhooks"
	return b
}

// reset empties the buffer for the next chunk.
func (b *lineBuilder) reset() {
	b.buf = b.buf[:0]
	b.lines = 0
}

// add appends e's line; e's slices are not kept.
func (b *lineBuilder) add(e *store.ExportEvent) error {
	b.lines++
	if payload, ok := tokenPayload(e.JWS); ok {
		n, dl := len(b.buf), base64.RawURLEncoding.DecodedLen(len(payload))
		b.buf = slices.Grow(b.buf, dl+1)
		if m, err := base64.RawURLEncoding.Decode(b.buf[n:n+dl], payload); err == nil && bytes.IndexByte(b.buf[n:n+m], '\n') < 0 {
			b.buf = append(b.buf[:n+m], '\n')
			return nil
		}
		// Not a token hookd signed: build the claims.
	}
	if string(e.Type) != b.typ {
		b.typ = string(e.Type)
	}
	if string(e.Endpoint) != b.endpoint {
		b.endpoint = string(e.Endpoint)
	}
	b.aud[0] = b.endpoint
	c := &b.claims
	c.IssuedAt = e.CreatedAt.Unix()
	c.ID = e.ID.String()
	if e.Jti != (uuid.UUID{}) {
		c.ID = e.Jti.String()
	}
	c.Audience = b.aud[:]
	c.Txn = string(e.Txn)
	c.TimeOfEvent = e.Toe
	c.EventType = b.typ
	c.Event = e.Payload
	b.buf = secevent.AppendClaims(b.buf, *c)
	b.buf = append(b.buf, '\n')
	return nil
}

// tokenPayload returns the payload segment of a compact JWS.
func tokenPayload(jws []byte) ([]byte, bool) {
	i := bytes.IndexByte(jws, '.')
	j := bytes.LastIndexByte(jws, '.')
	if i < 0 || j <= i {
		return nil, false
	}
	return jws[i+1 : j], true
}
