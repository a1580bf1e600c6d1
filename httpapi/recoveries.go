package httpapi

import (
	"errors"
	"net/http"

	"github.com/google/uuid"

	"hookd/recovery"
)

// recoveryJSON is the wire form of a recovery: a redeliver of a
// subscription's failed events that goes on past the request.
type recoveryJSON struct {
	ID    uuid.UUID `json:"id"`
	State string    `json:"state"`
	// Count is the number of events requeued so far (the answer's only
	// member before recoveries were jobs).
	Count      int               `json:"count"`
	Matched    int               `json:"matched"`
	Requeued   int               `json:"requeued"`
	Selection  recoverySelection `json:"selection"`
	Failure    string            `json:"failureReason,omitempty"`
	StartedAt  string            `json:"startedAt"`
	UpdatedAt  string            `json:"updatedAt"`
	FinishedAt string            `json:"finishedAt,omitempty"`
	Links      map[string]link   `json:"_links"`
}

// recoverySelection is what a recovery redelivers: the request's body.
type recoverySelection struct {
	After  string `json:"after,omitempty"`
	Before string `json:"before,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func recoveryPath(cid, sid, id uuid.UUID) string {
	return subscriptionPath(cid, sid) + "/events/redeliver/" + id.String()
}

func toRecoveryJSON(j recovery.Job) recoveryJSON {
	out := recoveryJSON{
		ID: j.ID, State: j.State.String(), Count: j.Requeued, Matched: j.Matched, Requeued: j.Requeued,
		Selection: recoverySelection{Reason: j.Query.Reason.String()},
		Failure:   j.Reason, StartedAt: eventTime(j.StartedAt), UpdatedAt: eventTime(j.UpdatedAt),
		Links: map[string]link{
			"self":   {Href: recoveryPath(j.CustomerID, j.SubscriptionID, j.ID)},
			"events": {Href: subscriptionPath(j.CustomerID, j.SubscriptionID) + "/events"},
		},
	}
	if !j.Query.After.IsZero() {
		out.Selection.After = eventTime(j.Query.After)
	}
	if !j.Query.Before.IsZero() {
		out.Selection.Before = eventTime(j.Query.Before)
	}
	if !j.FinishedAt.IsZero() {
		out.FinishedAt = eventTime(j.FinishedAt)
	}
	return out
}

// errNoRecoveries answers when no recovery runner is wired.
func errNoRecoveries() *Error {
	return problem(http.StatusServiceUnavailable, "unavailable", "redelivery of many events is not available")
}

// redeliverAll starts a recovery: it puts the subscription's failed events
// back to awaiting-executing, every one or those the optional body selects
// ({"after","before","reason"}). The first batch is requeued before the
// answer; a larger recovery goes on in the background, paced by the
// subscription's backlog (package recovery). One recovery per subscription
// runs at a time: a second one is 409 with the running one's link.
func (s *Server) redeliverAll(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, err := pathUUID(r, "subscriptionId")
	if err != nil {
		return err
	}
	q, err := redeliverQuery(w, r, s.MaxBody)
	if err != nil {
		return err
	}
	if s.Recoveries == nil {
		return errNoRecoveries()
	}
	j, err := s.Recoveries.Begin(cid, sid, q)
	var running *recovery.RunningError
	if errors.As(err, &running) {
		href := recoveryPath(cid, sid, running.Job.ID)
		p := problem(http.StatusConflict, "recovery-running", "a recovery of this subscription is running: "+href)
		p.location = href
		return p
	}
	if errors.Is(err, recovery.ErrClosed) {
		return problem(http.StatusServiceUnavailable, "unavailable", "hookd is shutting down; send the request again to the next hookd")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", recoveryPath(cid, sid, j.ID))
	return writeJSON(w, http.StatusAccepted, toRecoveryJSON(j))
}

// getRecovery shows a recovery's progress.
func (s *Server) getRecovery(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, id, err := recoveryIDs(r)
	if err != nil {
		return err
	}
	if s.Recoveries == nil {
		return errNoRecoveries()
	}
	j, err := s.Recoveries.Job(cid, sid, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toRecoveryJSON(j))
}

// cancelRecovery stops a running recovery; what it requeued stays
// requeued. A finished recovery is 409.
func (s *Server) cancelRecovery(w http.ResponseWriter, r *http.Request, cid uuid.UUID) error {
	sid, id, err := recoveryIDs(r)
	if err != nil {
		return err
	}
	if s.Recoveries == nil {
		return errNoRecoveries()
	}
	j, err := s.Recoveries.Cancel(cid, sid, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toRecoveryJSON(j))
}

func recoveryIDs(r *http.Request) (sid, id uuid.UUID, err error) {
	if sid, err = pathUUID(r, "subscriptionId"); err != nil {
		return
	}
	id, err = pathUUID(r, "recoveryId")
	return
}
