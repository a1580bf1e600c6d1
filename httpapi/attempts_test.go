package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// testJWS is a compact JWS whose header and claims are the given JSON.
func testJWS(header, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + ".c2ln"
}

type attemptsAnswer struct {
	Total    int
	Embedded struct {
		Attempts []struct {
			Attempt    int
			StartedAt  time.Time
			EndedAt    time.Time
			DurationMs float64
			Endpoint   string
			Outcome    string
			ReasonCode string
			Request    struct {
				Method  string
				Headers map[string]string
				Token   *struct {
					Header map[string]any
					Claims map[string]any
				}
			}
			Response *struct {
				StatusCode   int
				Headers      map[string]string
				Body         string
				BodyEncoding string
				Kept         bool
			}
		}
	} `json:"_embedded"`
}

// TestEventAttempts: the attempts resource pairs each attempt's rows into
// its start, end and duration, shows the request hookd sent with its
// token decoded (the audience of each attempt's endpoint), and the
// responses the store keeps, the body as text or base64; older responses
// show their status only.
func TestEventAttempts(t *testing.T) {
	db, customer, token := testTenant(t)
	_, base := testAPI(t, db, Options{DeliveryUserAgent: "hookd/test"})
	sub := store.Subscription{ID: uuid.New(), CustomerID: customer, Title: "attempts", Endpoint: "https://new.example/hook",
		Events: []string{"entityCreated"}, Enabled: true, CreatedAt: db.Now(), UpdatedAt: db.Now()}
	if err := db.CreateSubscription(sub, 0); err != nil {
		t.Fatal(err)
	}
	added, err := db.AddEvents([]store.NewEvent{{Type: "entityCreated", Txn: "t", Toe: 1, Payload: []byte(`{"sub":"u"}`)}},
		[]store.Delivery{{SubscriptionID: sub.ID}})
	if err != nil {
		t.Fatal(err)
	}
	a := added[0]
	seq := store.EventSeq(a.ID)
	header := `{"alg":"ES256","kid":"k1","typ":"secevent+jwt"}`
	oldJWS := testJWS(header, `{"aud":["https://old.example/hook"],"jti":"j"}`)
	newJWS := testJWS(header, `{"aud":["https://new.example/hook"],"jti":"j"}`)
	start := db.Now()
	results := []store.AttemptResult{
		// Four failed attempts: the first one's response is no longer kept.
		{Endpoint: "https://old.example/hook", JWS: oldJWS, StatusCode: 500, Body: []byte("down 1"), Duration: 120 * time.Millisecond},
		{Endpoint: "https://old.example/hook", JWS: oldJWS, StatusCode: 0, Reason: "timeout", Code: store.ReasonTimeout, Duration: 10 * time.Second},
		{Endpoint: "https://new.example/hook", JWS: newJWS, StatusCode: 503, Body: []byte{0xff, 0xfe}, Headers: []store.Header{{Name: "Retry-After", Value: "1"}}, Duration: time.Millisecond},
		{Endpoint: "https://new.example/hook", JWS: newJWS, StatusCode: 500, Body: []byte("down 4"), Duration: time.Millisecond},
		{Endpoint: "https://new.example/hook", JWS: newJWS, StatusCode: 429, Duration: time.Millisecond},
		// Delivered with an empty body: the event's response has its headers.
		{Endpoint: "https://new.example/hook", JWS: newJWS, StatusCode: 204, Headers: []store.Header{{Name: "X-Ok", Value: "yes"}}, Duration: 2500 * time.Microsecond},
	}
	for i, r := range results {
		r.SubscriptionID, r.Seq = sub.ID, seq
		r.StartedAt = start.Add(time.Duration(i) * time.Minute)
		r.Outcome, r.RetryAt = store.Retry, start.Add(time.Hour)
		if r.StatusCode == 0 {
			r.Code = store.ReasonTimeout
		} else {
			r.Code = store.ReasonStatus5xx
		}
		if r.StatusCode == 204 {
			r.Outcome, r.Code = store.Delivered, store.ReasonNone
		}
		if err := db.RecordAttempts([]store.AttemptResult{r}); err != nil {
			t.Fatal(err)
		}
	}

	path := base + "/" + customer.String() + "/webhooks/subscriptions/" + sub.ID.String() + "/events/" + a.ID.String()
	res := callAPI(t, http.MethodGet, path+"/attempts", token, "", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("got %d %s, want 200", res.Status, res.Body)
	}
	var got attemptsAnswer
	if err := json.Unmarshal(res.Body, &got); err != nil {
		t.Fatal(err)
	}
	atts := got.Embedded.Attempts
	if got.Total != len(results) || len(atts) != len(results) {
		t.Fatalf("got %d attempts (total %d), want %d", len(atts), got.Total, len(results))
	}
	for i, x := range atts {
		r := results[i]
		if x.Attempt != i+1 || !x.StartedAt.Equal(start.Add(time.Duration(i)*time.Minute)) || x.Endpoint != r.Endpoint {
			t.Errorf("attempt %d: got number %d, start %v, endpoint %q", i+1, x.Attempt, x.StartedAt, x.Endpoint)
		}
		if want := float64(r.Duration.Microseconds()) / 1000; x.DurationMs != want || !x.EndedAt.Equal(x.StartedAt.Add(r.Duration)) {
			t.Errorf("attempt %d: got duration %v ms, ended %v; want %v ms after its start", i+1, x.DurationMs, x.EndedAt, want)
		}
		if x.Request.Method != "POST" || x.Request.Headers["User-Agent"] != "hookd/test" || x.Request.Headers["Content-Type"] != "application/secevent+jwt" {
			t.Errorf("attempt %d: got request %+v, want a POST with hookd's headers", i+1, x.Request)
		}
		if tok := x.Request.Token; tok == nil || tok.Header["kid"] != "k1" || tok.Claims["jti"] != "j" ||
			len(tok.Claims["aud"].([]any)) != 1 || tok.Claims["aud"].([]any)[0] != r.Endpoint {
			t.Errorf("attempt %d: got token %+v, want the decoded token with aud [%s]", i+1, tok, r.Endpoint)
		}
	}
	check := func(n, status int, kept bool, body, encoding string, headers map[string]string) {
		t.Helper()
		resp := atts[n-1].Response
		if status == 0 {
			if resp != nil {
				t.Errorf("attempt %d: got response %+v, want none", n, resp)
			}
			return
		}
		if resp == nil || resp.StatusCode != status || resp.Kept != kept || resp.Body != body || resp.BodyEncoding != encoding || len(resp.Headers) != len(headers) {
			t.Errorf("attempt %d: got response %+v, want status %d kept %v body %q (%s) headers %v", n, resp, status, kept, body, encoding, headers)
			return
		}
		for k, v := range headers {
			if resp.Headers[k] != v {
				t.Errorf("attempt %d: got header %s %q, want %q", n, k, resp.Headers[k], v)
			}
		}
	}
	check(1, 500, false, "", "", nil) // older than the last 3 kept
	check(2, 0, false, "", "", nil)   // no response
	check(3, 503, true, base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}), "base64", map[string]string{"Retry-After": "1"})
	check(4, 500, true, "down 4", "", nil)
	check(5, 429, true, "", "", nil)
	check(6, 204, true, "", "", map[string]string{"X-Ok": "yes"})
	if atts[1].ReasonCode != "timeout" || atts[1].Outcome != "awaiting-retry" || atts[5].Outcome != "success" {
		t.Errorf("got outcomes %s (%s) and %s, want awaiting-retry (timeout) and success", atts[1].Outcome, atts[1].ReasonCode, atts[5].Outcome)
	}

	// The event links to its attempts; unknown events are 404.
	ev := callAPI(t, http.MethodGet, path, token, "", nil)
	if !strings.Contains(string(ev.Body), `"attempts":{"href":"`+strings.TrimPrefix(path, base)+`/attempts"}`) {
		t.Errorf("event: got %s, want a link to its attempts", ev.Body)
	}
	unknown := base + "/" + customer.String() + "/webhooks/subscriptions/" + sub.ID.String() + "/events/" + uuid.NewString() + "/attempts"
	if res := callAPI(t, http.MethodGet, unknown, token, "", nil); res.Status != http.StatusNotFound {
		t.Errorf("unknown event: got %d, want 404", res.Status)
	}
}

// TestEventSearch: txn and sub search the list, keep the other
// conditions, carry over into the page links, and are bounded.
func TestEventSearch(t *testing.T) {
	db, customer, token := testTenant(t)
	_, base := testAPI(t, db, Options{})
	sub := store.Subscription{ID: uuid.New(), CustomerID: customer, Title: "search", Endpoint: "https://x.example/hook",
		Events: []string{"entityCreated", "entityDeleted"}, Enabled: true, CreatedAt: db.Now(), UpdatedAt: db.Now()}
	if err := db.CreateSubscription(sub, 0); err != nil {
		t.Fatal(err)
	}
	txn := uuid.NewString()
	added, err := db.AddEvents([]store.NewEvent{
		{Type: "entityCreated", Txn: txn, Toe: 1, Payload: []byte(`{"sub":"user 1"}`)},
		{Type: "entityDeleted", Txn: uuid.NewString(), Toe: 1, Payload: []byte(`{"sub":"user 1"}`)},
		{Type: "entityCreated", Txn: uuid.NewString(), Toe: 1, Payload: []byte(`{"sub":"user 2"}`)},
	}, []store.Delivery{{SubscriptionID: sub.ID, Event: 0}, {SubscriptionID: sub.ID, Event: 1}, {SubscriptionID: sub.ID, Event: 2}})
	if err != nil {
		t.Fatal(err)
	}
	list := base + "/" + customer.String() + "/webhooks/subscriptions/" + sub.ID.String() + "/events"
	search := func(query string) (ids []uuid.UUID, self string) {
		t.Helper()
		res := callAPI(t, http.MethodGet, list+"?"+query, token, "", nil)
		if res.Status != http.StatusOK {
			t.Fatalf("?%s: got %d %s, want 200", query, res.Status, res.Body)
		}
		var page struct {
			Links    struct{ Self struct{ Href string } } `json:"_links"`
			Embedded struct {
				Events []struct{ ID uuid.UUID }
			} `json:"_embedded"`
		}
		if err := json.Unmarshal(res.Body, &page); err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Embedded.Events {
			ids = append(ids, e.ID)
		}
		return ids, page.Links.Self.Href
	}
	if ids, self := search("txn=" + txn); len(ids) != 1 || ids[0] != added[0].ID || !strings.Contains(self, "txn="+txn) {
		t.Errorf("txn: got %v (self %s), want the first event and the txn kept in the links", ids, self)
	}
	if ids, self := search("sub=user+1&order=desc"); len(ids) != 2 || ids[0] != added[1].ID || ids[1] != added[0].ID || !strings.Contains(self, "sub=user+1") {
		t.Errorf("sub, newest first: got %v (self %s), want the second and the first", ids, self)
	}
	if ids, _ := search("sub=user+1&type=entityDeleted"); len(ids) != 1 || ids[0] != added[1].ID {
		t.Errorf("sub and type: got %v, want the second", ids)
	}
	if ids, _ := search("sub=nobody"); len(ids) != 0 {
		t.Errorf("no match: got %v, want none", ids)
	}
	for _, q := range []string{"sub=" + strings.Repeat("x", maxSearchLength+1), "txn=%ff"} {
		if res := callAPI(t, http.MethodGet, list+"?"+q, token, "", nil); res.Status != http.StatusBadRequest || res.Problem.Type != "/invalid-query" {
			t.Errorf("?%.20s…: got %d %s, want 400 /invalid-query", q, res.Status, res.Body)
		}
	}
}
