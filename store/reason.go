package store

import "strconv"

// ReasonCode says why an attempt failed or an event ended in failure: a
// small code beside the human reason text, stored with each history row
// and with the event (its latest failure's code), so that events can be
// selected and failures counted by it.
type ReasonCode uint8

// The reason codes. Zero is "none": a row that is no failure, or one
// stored before codes were recorded.
const (
	ReasonNone                 ReasonCode = iota
	ReasonTimeout                         // no connection, TLS handshake or request write within the attempt timeout
	ReasonDNS                             // the endpoint's host did not resolve
	ReasonConnect                         // the connection was refused, reset or closed, or could not be made
	ReasonTLS                             // the TLS handshake failed (untrusted certificate, plain HTTP behind https...)
	ReasonBlockedAddress                  // the host resolved to an address that is not public
	ReasonRedirect                        // a 3xx answer (redirects are not followed)
	ReasonStatus4xx                       // a 4xx answer other than 410
	ReasonStatus5xx                       // a 5xx answer
	ReasonResponseTooSlow                 // the request was sent but no answer came within the attempt timeout
	ReasonSubscriptionDisabled            // the subscription was disabled
	ReasonEndpointGone                    // a 410 Gone answer
	ReasonStatus1xx                       // a 1xx answer that ends the exchange (101)
	ReasonInternal                        // hookd could not make the attempt (the token could not be signed)
	NumReasons                            // the number of codes, for arrays indexed by code
)

var reasonNames = [NumReasons]string{
	ReasonTimeout:              "timeout",
	ReasonDNS:                  "dns",
	ReasonConnect:              "connect",
	ReasonTLS:                  "tls",
	ReasonBlockedAddress:       "blocked-address",
	ReasonRedirect:             "redirect",
	ReasonStatus4xx:            "status-4xx",
	ReasonStatus5xx:            "status-5xx",
	ReasonResponseTooSlow:      "response-too-slow",
	ReasonSubscriptionDisabled: "subscription-disabled",
	ReasonEndpointGone:         "endpoint-gone",
	ReasonStatus1xx:            "status-1xx",
	ReasonInternal:             "internal",
}

// String returns the API name of the code, empty for ReasonNone.
func (c ReasonCode) String() string {
	if c < NumReasons {
		return reasonNames[c]
	}
	return "reason(" + strconv.Itoa(int(c)) + ")"
}

// ParseReasonCode parses an API reason code name.
func ParseReasonCode(name string) (ReasonCode, bool) {
	for i, n := range reasonNames {
		if n != "" && n == name {
			return ReasonCode(i), true
		}
	}
	return 0, false
}

// ReasonCodes lists every code but ReasonNone, in their order.
func ReasonCodes() []ReasonCode {
	out := make([]ReasonCode, 0, NumReasons-1)
	for c := ReasonNone + 1; c < NumReasons; c++ {
		out = append(out, c)
	}
	return out
}
