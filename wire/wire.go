// Package wire is what a hookd server and its clients share: the JSON
// bodies of the HTTP API that the CLI reads, the problem answer every error
// comes as (RFC 7807 style, SPEC section 3), and the files through which a
// running server tells CLI commands on the same data directory where it
// listens and what its admin token is.
//
// The server (httpapi) writes these types and the CLI (cli) reads them, so
// the wire format changes in one place and the CLI never imports the
// server. Stored records stay in store.
package wire

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// The local files and defaults a server and the CLI commands agree on.
const (
	// DefaultListen is the address hookd serve listens on unless told.
	DefaultListen = "127.0.0.1:8080"
	// DefaultData is the data directory unless told.
	DefaultData = "./data"
	// URLFile, in the data directory, holds the base URL of the running
	// server; it is removed at shutdown.
	URLFile = "hookd.url"
	// AdminTokenFile, in the data directory, holds the generated admin token.
	AdminTokenFile = "admin.token"
)

// MaxIntakeEvents is the most events one intake request may carry.
const MaxIntakeEvents = 10000

// Problem is the body of every error answer (application/problem+json).
type Problem struct {
	Type    string       `json:"type"`
	Status  int          `json:"status"`
	Title   string       `json:"title"`
	Details string       `json:"details,omitempty"`
	Params  []ParamError `json:"invalid-body-params,omitempty"`
	ID      string       `json:"id,omitempty"` // internal errors only: the id in the server's log line
}

// Error renders the status, title and details.
func (p Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Details) }

// Text renders the whole problem for a person: the status, title and
// details, the error id, and one indented line per invalid parameter.
// name renders a parameter's name (nil: as sent).
func (p Problem) Text(name func(ParamError) string) string {
	if name == nil {
		name = func(pe ParamError) string { return pe.Name }
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Details != "" {
		b.WriteString(": " + p.Details)
	}
	if p.ID != "" {
		b.WriteString(" (error id " + p.ID + ")")
	}
	for _, pe := range p.Params {
		b.WriteString("\n  " + name(pe) + ": " + pe.Reason)
	}
	return b.String()
}

// ParamError names one invalid body parameter. The intake's problems also
// carry, as data, the field within the event (empty: the whole event) and,
// for an application/x-ndjson body, the line it is on (counted from 1,
// blank lines included; 0 otherwise), so that a client can point at its
// own file without reading the texts. Name then reads "line <Line>" or
// "line <Line>: <Field>".
type ParamError struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
	Line   int    `json:"line,omitempty"`
	Field  string `json:"field,omitempty"`
}

// Client is an API client as the admin API shows it; the secret only once,
// at creation.
type Client struct {
	CustomerID   uuid.UUID `json:"customerId"`
	ClientID     uuid.UUID `json:"clientId"`
	ClientSecret string    `json:"clientSecret,omitempty"`
	CreatedAt    string    `json:"createdAt"`
}

// ClientList is the admin API's list of a customer's clients.
type ClientList struct {
	Total   int      `json:"total"`
	Clients []Client `json:"clients"`
}

// KeyRotation is the admin API's answer to a key rotation: the key ids now
// in each role, those of RS256 at the top and every algorithm's in
// Algorithms.
type KeyRotation struct {
	CustomerID uuid.UUID   `json:"customerId"`
	Previous   string      `json:"previous"`
	Current    string      `json:"current"`
	Next       string      `json:"next"`
	RotatedAt  string      `json:"rotatedAt"`
	Algorithms []KeyTriple `json:"algorithms"`
}

// KeyTriple is the key ids of one signing algorithm after a rotation.
type KeyTriple struct {
	Alg      string `json:"alg"`
	Previous string `json:"previous"`
	Current  string `json:"current"`
	Next     string `json:"next"`
}

// Token is the token endpoint's answer.
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// IntakeSubscription lists the events the intake recorded for one subscription.
type IntakeSubscription struct {
	SubscriptionID uuid.UUID   `json:"subscriptionId"`
	EventIDs       []uuid.UUID `json:"eventIds"`
}

// IntakeResult is the intake's 202 answer.
type IntakeResult struct {
	Accepted      int                  `json:"accepted"`
	Recorded      int                  `json:"recorded"`
	Subscriptions []IntakeSubscription `json:"subscriptions"`
	// Duplicates are the ids of events recorded before (a sender's id
	// seen within the retention period, or twice in one request): they
	// were not recorded again.
	Duplicates []uuid.UUID `json:"duplicates"`
}

// ReplayResult is the answer to a replay of export lines to a
// subscription (POST /admin/customers/{customerId}/subscriptions/{subscriptionId}/replay).
type ReplayResult struct {
	// Accepted counts the lines of the request (each one event).
	Accepted int `json:"accepted"`
	// Recorded counts the events recorded for delivery.
	Recorded int `json:"recorded"`
	// EventIDs are the ids of the recorded events.
	EventIDs []uuid.UUID `json:"eventIds"`
	// Duplicates are the jtis a replay to this subscription recorded
	// before (within the retention period, or twice in one request):
	// they were not recorded again.
	Duplicates []uuid.UUID `json:"duplicates"`
}

// ExportReplay is the answer to a replay of an export job's file
// (POST .../exports/{exportId}/replay).
type ExportReplay struct {
	// Lines counts the lines of the file read by this request.
	Lines int64 `json:"lines"`
	// Recorded counts the events recorded for delivery by this request.
	Recorded int64 `json:"recorded"`
	// Duplicates counts the lines whose jti a replay to this subscription
	// recorded before.
	Duplicates int64 `json:"duplicates"`
	// Complete is false when the request's time ran out before the end
	// of the file: NextLine is then the line to continue from
	// (?fromLine=). Sending it again from an earlier line is safe: what
	// was recorded is skipped as duplicates.
	Complete bool  `json:"complete"`
	NextLine int64 `json:"nextLine,omitempty"`
}

// Link is a HAL link.
type Link struct {
	Href string `json:"href"`
}

// ExportJob is a bulk export job as the customer API shows it; the event
// count and the download link appear once it is completed.
type ExportJob struct {
	ID         uuid.UUID `json:"id"`
	CreatedAt  string    `json:"createdAt"`
	UpdatedAt  string    `json:"updatedAt"`
	State      string    `json:"state"`
	EventCount *int64    `json:"eventCount,omitempty"`
	// FailureReason says why a failed job failed: one of the store's
	// Failure* values, never internal detail (that is in the log, with
	// the job id).
	FailureReason string          `json:"failureReason,omitempty"`
	Links         map[string]Link `json:"_links"`
}
