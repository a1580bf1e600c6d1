package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// attemptsView is an event's attempts as the API shows them.
type attemptsView struct {
	Total    int `json:"total"`
	Embedded struct {
		Attempts []struct {
			Attempt    int       `json:"attempt"`
			StartedAt  time.Time `json:"startedAt"`
			EndedAt    time.Time `json:"endedAt"`
			DurationMs float64   `json:"durationMs"`
			Endpoint   string    `json:"endpoint"`
			Outcome    string    `json:"outcome"`
			Request    struct {
				Headers map[string]string `json:"headers"`
				Token   struct {
					Header map[string]any `json:"header"`
					Claims map[string]any `json:"claims"`
				} `json:"token"`
			} `json:"request"`
			Response *struct {
				StatusCode int               `json:"statusCode"`
				Headers    map[string]string `json:"headers"`
				Body       string            `json:"body"`
				Kept       bool              `json:"kept"`
			} `json:"response"`
		} `json:"attempts"`
	} `json:"_embedded"`
}

// TestAttemptDetailsAndSearch: an event to a listener that answers 500
// with a body, then 204, shows each attempt with its duration, the
// request hookd sent with the token it signed, and the responses, the
// failed ones with their bodies; the event list finds it by txn and by
// sub. Both stores (HOOKD_E2E_STORE=postgres).
func TestAttemptDetailsAndSearch(t *testing.T) {
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	var mu sync.Mutex
	seen := map[string]int{} // attempts per token: per event, as retries resend it
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[string(tok)]++
		k := seen[string(tok)]
		mu.Unlock()
		w.Header().Set("X-Attempt", fmt.Sprint(k))
		if k < 3 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "failure %d: %s", k, strings.Repeat("x", 5000)) // longer than the 4 KiB kept
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	endpoint := srv.URL + "/hook"
	sid := addSub(h, tn, map[string]any{"title": "attempts", "endpoint": endpoint, "events": []string{"entityCreated"}})
	txn := uuid.NewString()
	line := fmt.Sprintf(`{"type":"entityCreated","txn":%q,"event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":"user 42"}}`, txn)
	ids := postNDJSON(h, tn, line, evLine("entityCreated", "someone else")).ids(sid)
	id := ids[0]
	e := waitEventState(h, tn, sid, id, "success")
	if e.Links["attempts"].Href != subPath(tn, sid, "/events/"+id.String()+"/attempts") {
		t.Errorf("event links: got %v, want its attempts", e.Links)
	}

	var got attemptsView
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events/"+id.String()+"/attempts"), tn.Token, nil, &got)
	atts := got.Embedded.Attempts
	if got.Total != 3 || len(atts) != 3 {
		t.Fatalf("got %d attempts (total %d), want 3", len(atts), got.Total)
	}
	for i, a := range atts {
		if a.Attempt != i+1 || a.Endpoint != endpoint || a.EndedAt.Before(a.StartedAt) || a.DurationMs < 0 || a.DurationMs > 5000 {
			t.Errorf("attempt %d: got %+v, want number %d to %s with its duration", i+1, a, i+1, endpoint)
		}
		claims := a.Request.Token.Claims
		if claims["jti"] != id.String() || claims["txn"] != txn || a.Request.Token.Header["typ"] != "secevent+jwt" {
			t.Errorf("attempt %d: got token %+v, want the event's (jti %s, txn %s)", i+1, a.Request.Token, id, txn)
		}
		if a.Request.Headers["Content-Type"] != "application/secevent+jwt" || !strings.HasPrefix(a.Request.Headers["User-Agent"], "hookd") {
			t.Errorf("attempt %d: got request headers %v, want hookd's", i+1, a.Request.Headers)
		}
	}
	for i, a := range atts[:2] {
		r := a.Response
		want := fmt.Sprintf("failure %d: ", i+1)
		if r == nil || r.StatusCode != 500 || !r.Kept || !strings.HasPrefix(r.Body, want) || len(r.Body) != 4096 || r.Headers["X-Attempt"] != fmt.Sprint(i+1) {
			t.Errorf("attempt %d: got response %+v, want 500 with the first 4096 bytes of its body and its headers", i+1, r)
		}
		if a.Outcome != "awaiting-retry" {
			t.Errorf("attempt %d: got outcome %s, want awaiting-retry", i+1, a.Outcome)
		}
	}
	if r := atts[2].Response; r == nil || r.StatusCode != 204 || r.Body != "" || !r.Kept || r.Headers["X-Attempt"] != "3" || atts[2].Outcome != "success" {
		t.Errorf("attempt 3: got %+v, want the 204 with its headers", atts[2])
	}

	// The list finds the event by its txn and by its sub.
	for _, q := range []string{"txn=" + txn, "sub=" + url.QueryEscape("user 42")} {
		var list struct {
			Total    int `json:"total"`
			Embedded struct {
				Events []struct{ ID uuid.UUID } `json:"events"`
			} `json:"_embedded"`
		}
		h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, sid, "/events?"+q), tn.Token, nil, &list)
		if list.Total != 1 || len(list.Embedded.Events) != 1 || list.Embedded.Events[0].ID != id {
			t.Errorf("?%s: got %+v, want the event %s alone", q, list, id)
		}
	}
	h.mustCall(http.StatusBadRequest, http.MethodGet, subPath(tn, sid, "/events?sub="+strings.Repeat("x", 1025)), tn.Token, nil, nil)
}
