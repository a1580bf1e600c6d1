package store

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Subscription is a customer's listener endpoint and the event types it wants.
type Subscription struct {
	ID         uuid.UUID       `json:"id"`
	CustomerID uuid.UUID       `json:"customerId"`
	Title      string          `json:"title"`
	Endpoint   string          `json:"endpoint"`
	Events     []string        `json:"events"`
	Enabled    bool            `json:"enabled"`
	Filter     json.RawMessage `json:"filter,omitempty"`
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
	// DisabledAt is when the subscription was last disabled, zero while enabled.
	DisabledAt time.Time `json:"disabledAt,omitzero"`
	// DisabledReason says why hookd disabled it (DisabledEndpointGone,
	// DisabledEndpointFailing); empty when the customer did, or while enabled.
	DisabledReason string `json:"disabledReason,omitempty"`
	// SigningAlg is the algorithm its tokens are signed with (one of
	// SigningAlgs); empty is RS256.
	SigningAlg string `json:"signingAlg,omitempty"`
}

// Alg returns the subscription's signing algorithm, RS256 when unset.
func (s Subscription) Alg() string {
	if s.SigningAlg == "" {
		return AlgRS256
	}
	return s.SigningAlg
}

// Reasons hookd disables a subscription for.
const (
	// DisabledEndpointGone: the endpoint answered 410 Gone.
	DisabledEndpointGone = "endpoint-gone"
	// DisabledEndpointFailing: every attempt failed for the auto-disable period.
	DisabledEndpointFailing = "endpoint-failing"
)

// Wants reports whether the subscription is subscribed to event type t.
func (s Subscription) Wants(t string) bool {
	for _, e := range s.Events {
		if e == t {
			return true
		}
	}
	return false
}
