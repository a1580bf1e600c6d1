package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"hookd/store"
)

// attemptJSON is one delivery attempt of an event: when it started and
// ended, where it went, what hookd sent and what the listener answered.
type attemptJSON struct {
	Attempt    int                  `json:"attempt"`
	StartedAt  string               `json:"startedAt"`
	EndedAt    string               `json:"endedAt,omitempty"`    // absent while the attempt's outcome is not recorded
	DurationMs *float64             `json:"durationMs,omitempty"` // with endedAt
	Endpoint   string               `json:"endpoint"`
	Outcome    string               `json:"outcome,omitempty"` // the state the attempt left the event in
	Reason     string               `json:"reason,omitempty"`
	ReasonCode string               `json:"reasonCode,omitempty"`
	Request    attemptRequestJSON   `json:"request"`
	Response   *attemptResponseJSON `json:"response,omitempty"` // absent when there was no response
}

type attemptRequestJSON struct {
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Token   *tokenJSON        `json:"token,omitempty"` // absent until the event is signed
}

// tokenJSON is a token decoded: its protected header and claims.
type tokenJSON struct {
	Header json.RawMessage `json:"header"`
	Claims json.RawMessage `json:"claims"`
}

type attemptResponseJSON struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers,omitempty"` // absent when not kept
	// Body is the first bytes of the response body (delivery.MaxKeptBody),
	// as text, or base64 when bodyEncoding says so; absent when the body
	// was empty or is not kept.
	Body         string `json:"body,omitempty"`
	BodyEncoding string `json:"bodyEncoding,omitempty"`
	// Kept is false when hookd no longer keeps the attempt's response
	// headers and body (it keeps them for the last store.KeptAttemptDetails
	// attempts that had some).
	Kept bool `json:"kept"`
}

// requestHeaders are the headers hookd sends with every notification.
func (s *Server) requestHeaders() map[string]string {
	ua := s.DeliveryUserAgent
	if ua == "" {
		ua = "hookd"
	}
	return map[string]string{"Content-Type": "application/secevent+jwt", "Accept": "*/*", "User-Agent": ua}
}

// headerMap joins the values of repeated headers as HTTP does.
func headerMap(hs []store.Header) map[string]string {
	h := make(map[string]string, len(hs))
	for _, x := range hs {
		if v, ok := h[x.Name]; ok {
			h[x.Name] = v + ", " + x.Value
		} else {
			h[x.Name] = x.Value
		}
	}
	return h
}

// decodeToken returns the protected header and claims of a compact JWS,
// nil when it is not one.
func decodeToken(jws string) *tokenJSON {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil
	}
	part := func(p string) json.RawMessage {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil || !json.Valid(b) {
			return nil
		}
		return b
	}
	t := &tokenJSON{Header: part(parts[0]), Claims: part(parts[1])}
	if t.Header == nil || t.Claims == nil {
		return nil
	}
	return t
}

// forEndpoint returns t with its audience set to endpoint: the claims of
// the token signed for an attempt to another endpoint than the last one
// (hookd signs an event again, with the same other claims, when its
// subscription's endpoint changed).
func (t *tokenJSON) forEndpoint(endpoint string) *tokenJSON {
	var claims map[string]json.RawMessage
	if t == nil || endpoint == "" || json.Unmarshal(t.Claims, &claims) != nil {
		return t
	}
	aud, _ := json.Marshal([]string{endpoint})
	if string(claims["aud"]) == string(aud) {
		return t
	}
	claims["aud"] = aud
	b, err := json.Marshal(claims)
	if err != nil {
		return t
	}
	return &tokenJSON{Header: t.Header, Claims: b}
}

// eventAttempts lists an event's attempts, oldest first, from its history,
// with the responses kept of its last attempts.
func (s *Server) eventAttempts(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	id, err := pathUUID(r, "eventId")
	if err != nil {
		return err
	}
	e, details, err := s.DB.EventAttempts(cid, sid, id)
	if err != nil {
		return err
	}
	out := attemptsOf(&e, details, s.requestHeaders())
	self := eventPath(cid, e.SubscriptionID, e.ID)
	return writeJSON(w, http.StatusOK, map[string]any{
		"total":     len(out),
		"_links":    map[string]link{"self": {Href: self + "/attempts"}, "event": {Href: self}},
		"_embedded": map[string]any{"attempts": out},
	})
}

// attemptsOf pairs each attempt's executing row with the row that ended it
// and adds what is kept of its response.
func attemptsOf(e *store.Event, details []store.AttemptDetail, headers map[string]string) []attemptJSON {
	byAttempt := make(map[int]store.AttemptDetail, len(details))
	for _, d := range details {
		byAttempt[d.Attempt] = d
	}
	token := decodeToken(e.JWS)
	out := []attemptJSON{}
	open := -1 // index in out of the attempt not yet ended
	var started time.Time
	for _, h := range e.History {
		if h.State == store.Executing {
			endpoint := h.Endpoint
			if endpoint == "" {
				endpoint = e.Endpoint
			}
			out = append(out, attemptJSON{Attempt: h.Attempt, StartedAt: eventTime(h.At), Endpoint: endpoint,
				Request: attemptRequestJSON{Method: http.MethodPost, Headers: headers, Token: token.forEndpoint(endpoint)}})
			open, started = len(out)-1, h.At
			continue
		}
		if open < 0 || out[open].Attempt != h.Attempt {
			continue // a state change that is not an attempt's end (a disable, a redelivery)
		}
		a := &out[open]
		open = -1
		a.EndedAt = eventTime(h.At)
		ms := float64(h.At.Sub(started).Microseconds()) / 1000
		a.DurationMs = &ms
		a.Outcome, a.Reason, a.ReasonCode = h.State.String(), h.Reason, h.Code.String()
		if h.StatusCode == 0 {
			continue
		}
		resp := &attemptResponseJSON{StatusCode: h.StatusCode}
		if d, ok := byAttempt[a.Attempt]; ok {
			resp.Kept = true
			resp.Headers = headerMap(d.Headers)
			if len(d.Body) > 0 {
				if utf8.Valid(d.Body) {
					resp.Body = string(d.Body)
				} else {
					resp.Body, resp.BodyEncoding = base64.StdEncoding.EncodeToString(d.Body), "base64"
				}
			}
		} else if a.Attempt == e.Attempts && e.Response != nil {
			// The last attempt, delivered with an empty body: the event
			// keeps its response.
			resp.Kept = true
			resp.Headers = headerMap(e.Response.Headers)
		}
		a.Response = resp
	}
	return out
}
