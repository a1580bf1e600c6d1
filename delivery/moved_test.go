package delivery

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"hookd/store"
)

// TestRetryGoesToTheMovedEndpoint: an event awaiting its retry when the
// subscription's endpoint changes is retried at the new endpoint, with a
// token signed for it that keeps every other claim.
func TestRetryGoesToTheMovedEndpoint(t *testing.T) {
	clk := &testClock{t: time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC)}
	env := newClockedDispatchEnv(t, clk, &syncLog{}, DispatcherOptions{Schedule: Schedule{Delays: []time.Duration{0, time.Hour}}})
	old := newListener(t, statusHandler(http.StatusServiceUnavailable))
	moved := newListener(t, statusHandler(http.StatusOK))
	s := env.addSub(old.URL)
	a := env.post(s, 1)[0]
	env.waitState(s, a.ID, store.AwaitingRetry)

	if _, _, err := env.db.UpdateSubscription(s.CustomerID, s.ID, func(x *store.Subscription) error { x.Endpoint = moved.URL; return nil }); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	env.d.Notify(s.ID)
	e := env.waitState(s, a.ID, store.Success)

	claims := func(tok string) map[string]any {
		t.Helper()
		payload, err := Verify(tok, &env.key.Private.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if len(old.received()) != 1 || len(moved.received()) != 1 {
		t.Fatalf("got %d requests at the old endpoint and %d at the new, want 1 each", len(old.received()), len(moved.received()))
	}
	before, after := claims(old.received()[0]), claims(moved.received()[0])
	if aud := after["aud"].([]any); len(aud) != 1 || aud[0] != moved.URL {
		t.Errorf("aud of the retry: got %v, want [%s]", aud, moved.URL)
	}
	for _, k := range []string{"iss", "iat", "jti", "txn", "toe"} {
		if before[k] != after[k] {
			t.Errorf("%s: got %v at the new endpoint, want %v", k, after[k], before[k])
		}
	}
	if e.Endpoint != moved.URL || e.JWS != moved.received()[0] {
		t.Errorf("stored: got endpoint %s and the token of %d bytes, want %s and the token sent", e.Endpoint, len(e.JWS), moved.URL)
	}
	var got []string
	for _, h := range e.History {
		if h.State == store.Executing {
			got = append(got, h.Endpoint)
		}
	}
	if strings.Join(got, " ") != old.URL+" "+moved.URL {
		t.Errorf("executing rows: got %v, want the old then the new endpoint", got)
	}
}
