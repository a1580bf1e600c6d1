package store

import (
	"hookd/secevent"
)

// AppendEventClaims appends the claims of e's token for endpoint signed by
// issuer: iat is the event's creation time and jti the sender's id of the
// event, or else its id, so the claims are the same whenever they are made
// for that endpoint. The dispatcher signs these claims, and a record
// rebuilds its token from them.
func AppendEventClaims(dst []byte, e *Event, issuer, endpoint string) []byte {
	aud := [1]string{endpoint}
	return secevent.AppendClaims(dst, secevent.Claims{
		Issuer:      issuer,
		IssuedAt:    e.CreatedAt.Unix(),
		ID:          e.JTI().String(),
		Audience:    aud[:],
		Txn:         e.Txn,
		TimeOfEvent: e.Toe,
		EventType:   e.Type,
		Event:       e.Payload,
	})
}
