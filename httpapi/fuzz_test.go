package httpapi

// Fuzz targets for every parser a client reaches, each through the real
// router and handler with a real bbolt store. Their seed corpora are in
// testdata/fuzz/<target>/; `make fuzz-short` runs each for a few seconds,
// `make fuzz` for longer. The invariants: no panic, no 5xx, an error is a
// problem JSON body of the same status, a success is a well-formed answer
// that agrees with the store, and a refused request stores nothing.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hookd/store/bolt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/blob/memblob"

	"hookd/delivery"
	"hookd/store"
)

// fuzzAdminToken is the admin token of the fuzzed server.
const fuzzAdminToken = "fuzz-admin-token-0123456789abcdef"

// fuzzAPI is a server on a real store with one customer, a client, an
// access token, a subscription that takes every event, a few events and a
// completed export with its file.
type fuzzAPI struct {
	db       *bolt.DB
	srv      *Server
	customer uuid.UUID
	clientID uuid.UUID
	secret   string
	token    string
	sub      uuid.UUID
	export   uuid.UUID
	file     []byte // the export's stored bytes
	etag     string
}

// offlineResolver fails every lookup at once: endpoint checks of fuzzed
// host names never reach the network.
var offlineResolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("no DNS while fuzzing")
}}

func newFuzzAPI(tb testing.TB, dir string) *fuzzAPI {
	tb.Helper()
	db, err := bolt.Open(dir, bolt.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Check(); err != nil {
			tb.Errorf("store check: %v", err)
		}
		db.Close()
	})
	a := &fuzzAPI{db: db, customer: uuid.New(), clientID: uuid.New(), secret: "fuzz-secret"}
	noKeys := func() (store.KeySet, error) { return store.KeySet{}, nil }
	if _, err := db.CreateClient(a.customer, a.clientID, store.HashSecret(a.secret), noKeys); err != nil {
		tb.Fatal(err)
	}
	a.token = "fuzz-token-" + uuid.NewString()
	if err := db.PutToken(store.HashSecret(a.token), store.Token{CustomerID: a.customer, ClientID: a.clientID, Scope: WebhooksScope, ExpiresAt: time.Now().Add(24 * time.Hour)}); err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	a.sub = uuid.New()
	sub := store.Subscription{ID: a.sub, CustomerID: a.customer, Title: "fuzz fixture", Endpoint: "https://example.com/hook",
		Events: []string{"entityCreated", "entityDeleted", "entityUpdated"}, Enabled: true, CreatedAt: now, UpdatedAt: now}
	sub.Enabled = false // its first events are stored as failed, so that it has something to export
	if err := db.CreateSubscription(sub, 0); err != nil {
		tb.Fatal(err)
	}
	failed := []store.NewEvent{{Type: "entityCreated", Txn: uuid.NewString(), Toe: now.Unix(), Payload: []byte(`{"sub":"failed"}`)}}
	if _, err := db.AddEvents(failed, []store.Delivery{{SubscriptionID: a.sub}}); err != nil {
		tb.Fatal(err)
	}
	if _, _, err := db.UpdateSubscription(a.customer, a.sub, func(s *store.Subscription) error { s.Enabled = true; return nil }); err != nil {
		tb.Fatal(err)
	}
	var events []store.NewEvent
	var deliveries []store.Delivery
	for i := range 5 {
		events = append(events, store.NewEvent{Type: "entityCreated", Txn: uuid.NewString(), Toe: now.Unix(), Payload: []byte(`{"sub":"s` + strconv.Itoa(i) + `"}`)})
		deliveries = append(deliveries, store.Delivery{SubscriptionID: a.sub, Event: i})
	}
	if _, err := db.AddEvents(events, deliveries); err != nil {
		tb.Fatal(err)
	}

	bucket := memblob.OpenBucket(nil)
	tb.Cleanup(func() { bucket.Close() })
	job, err := db.CreateExport(a.customer, a.sub, "", store.ScopeSubscription, 0)
	if err != nil {
		tb.Fatal(err)
	}
	a.export = job.ID
	key := a.customer.String() + "/" + a.sub.String() + "/" + job.ID.String() + ".ndjson"
	if _, err := db.BeginExportWrite(job.ID, key); err != nil {
		tb.Fatal(err)
	}
	for i := range 40 {
		a.file = fmt.Appendf(a.file, `{"jti":"%02d","events":{"entityCreated":{"sub":"u-%02d"}}}`+"\n", i, i)
	}
	if err := bucket.WriteAll(context.Background(), key, a.file, nil); err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(a.file)
	a.etag = `"` + hex.EncodeToString(sum[:]) + `"`
	if _, err := db.CompleteExport(job.ID, store.ExportResult{Key: key, Size: int64(len(a.file)), ETag: a.etag}); err != nil {
		tb.Fatal(err)
	}

	a.srv = New(Options{
		DB: db, AdminToken: fuzzAdminToken, Dev: true, ClientRate: -1, Resolver: offlineResolver,
		Hooks: Hooks{CheckEndpoint: func(ctx context.Context, raw string) error {
			return delivery.CheckEndpoint(ctx, raw, true, offlineResolver)
		}},
		Exports: ExportOptions{Bucket: bucket, Scope: store.ScopeSubscription},
	})
	return a
}

// do serves one request through the router.
func (a *fuzzAPI) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	a.srv.ServeHTTP(w, r)
	return w
}

// call sends method path with a bearer token and a body of Content-Type ct.
func (a *fuzzAPI) call(method, path, token, ct string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return a.do(r)
}

func (a *fuzzAPI) path(p string) string { return "/" + a.customer.String() + p }
func (a *fuzzAPI) subPath(p string) string {
	return a.path("/webhooks/subscriptions/" + a.sub.String() + p)
}

// problemBody is an error answer's body.
type problemBody struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Params []struct {
		Name   string `json:"name"`
		Reason string `json:"reason"`
	} `json:"invalid-body-params"`
}

// checkAnswer fails unless w's status is one of ok or a 4xx in refused,
// and an error answer is problem JSON with its status. It reports whether
// the request succeeded.
func checkAnswer(tb testing.TB, w *httptest.ResponseRecorder, ok []int, refused ...int) (bool, problemBody) {
	tb.Helper()
	for _, s := range ok {
		if w.Code == s {
			return true, problemBody{}
		}
	}
	known := false
	for _, s := range refused {
		known = known || w.Code == s
	}
	if !known {
		tb.Fatalf("got status %d, want one of %v or %v; body %s", w.Code, ok, refused, w.Body.Bytes())
	}
	var p problemBody
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		tb.Fatalf("got Content-Type %q on %d, want problem JSON", ct, w.Code)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != w.Code || !strings.HasPrefix(p.Type, "/") {
		tb.Fatalf("got problem %s (%v) on %d, want a problem of that status", w.Body.Bytes(), err, w.Code)
	}
	return false, p
}

func (a *fuzzAPI) eventTotal(t *testing.T) int {
	t.Helper()
	sum, err := a.db.Summary(a.customer, a.sub)
	if err != nil {
		t.Fatal(err)
	}
	return int(sum.Succeeded + sum.Retrying + sum.Failed)
}

// fuzzIntakeAnswer is the intake's 202 body.
type fuzzIntakeAnswer struct {
	Accepted      int `json:"accepted"`
	Recorded      int `json:"recorded"`
	Subscriptions []struct {
		SubscriptionID uuid.UUID   `json:"subscriptionId"`
		EventIDs       []uuid.UUID `json:"eventIds"`
	} `json:"subscriptions"`
}

// fuzzIntake posts body to the intake as ct and checks the invariants:
// 202 records each accepted event once for the fixture's subscription
// (it takes every type and has no filter); anything else stores nothing.
func fuzzIntake(t *testing.T, a *fuzzAPI, ct string, body []byte, events int) {
	before := a.eventTotal(t)
	w := a.call(http.MethodPost, a.path("/webhooks/events"), fuzzAdminToken, ct, body)
	// 503: an intake bounded by memory or disk space may ask to retry;
	// like any refusal, it stores nothing.
	ok, _ := checkAnswer(t, w, []int{http.StatusAccepted}, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusServiceUnavailable)
	after := a.eventTotal(t)
	if !ok {
		if after != before {
			t.Fatalf("got %d events after a refused intake, want %d", after, before)
		}
		return
	}
	var ans fuzzIntakeAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
		t.Fatalf("decode intake answer %s: %v", w.Body.Bytes(), err)
	}
	if events >= 0 && ans.Accepted != events {
		t.Fatalf("got %d events accepted, want %d (the body's events)", ans.Accepted, events)
	}
	if ans.Accepted < 1 || ans.Recorded != ans.Accepted || after != before+ans.Recorded {
		t.Fatalf("got accepted %d, recorded %d, events %d -> %d; want every accepted event recorded once", ans.Accepted, ans.Recorded, before, after)
	}
	if len(ans.Subscriptions) != 1 || ans.Subscriptions[0].SubscriptionID != a.sub || len(ans.Subscriptions[0].EventIDs) != ans.Recorded {
		t.Fatalf("got subscriptions %+v, want the fixture's with %d event ids", ans.Subscriptions, ans.Recorded)
	}
	for _, id := range ans.Subscriptions[0].EventIDs {
		if _, err := a.db.Event(a.customer, a.sub, id); err != nil {
			t.Fatalf("event %s of a 202: %v", id, err)
		}
	}
}

// FuzzIntakeJSON posts one event as application/json.
func FuzzIntakeJSON(f *testing.F) {
	a := newFuzzAPI(f, f.TempDir())
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzIntake(t, a, "application/json", body, 1)
	})
}

// FuzzIntakeNDJSON posts events as application/x-ndjson.
func FuzzIntakeNDJSON(f *testing.F) {
	a := newFuzzAPI(f, f.TempDir())
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzIntake(t, a, "application/x-ndjson", body, -1)
	})
}

// subscriptionAnswer is a subscription resource.
type subscriptionAnswer struct {
	ID         uuid.UUID       `json:"id"`
	CustomerID uuid.UUID       `json:"customerId"`
	Title      string          `json:"title"`
	Endpoint   string          `json:"endpoint"`
	Events     []string        `json:"events"`
	Enabled    *bool           `json:"enabled"`
	Filter     json.RawMessage `json:"filter"`
}

func (a *fuzzAPI) subscriptionCount(t *testing.T) int {
	t.Helper()
	subs, err := a.db.Subscriptions(a.customer)
	if err != nil {
		t.Fatal(err)
	}
	return len(subs)
}

// createAndCheck posts a subscription body; a 201 is checked against what a
// GET returns, then deleted so that the limit is never reached. A refused
// body stores nothing.
func createAndCheck(t *testing.T, a *fuzzAPI, body []byte, created func(subscriptionAnswer)) (bool, problemBody) {
	before := a.subscriptionCount(t)
	w := a.call(http.MethodPost, a.path("/webhooks/subscriptions"), a.token, "application/json", body)
	ok, p := checkAnswer(t, w, []int{http.StatusCreated}, http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge)
	if !ok {
		if n := a.subscriptionCount(t); n != before {
			t.Fatalf("got %d subscriptions after a refused create, want %d", n, before)
		}
		return false, p
	}
	var s subscriptionAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatalf("decode %s: %v", w.Body.Bytes(), err)
	}
	if s.ID == uuid.Nil || s.CustomerID != a.customer || len(s.Title) < 2 || s.Endpoint == "" || s.Events == nil || s.Enabled == nil {
		t.Fatalf("got resource %s, want a complete subscription", w.Body.Bytes())
	}
	if loc := w.Header().Get("Location"); loc != a.path("/webhooks/subscriptions/"+s.ID.String()) {
		t.Fatalf("got Location %q, want the resource's path", loc)
	}
	g := a.call(http.MethodGet, a.path("/webhooks/subscriptions/"+s.ID.String()), a.token, "", nil)
	if g.Code != http.StatusOK || !bytes.Equal(g.Body.Bytes(), w.Body.Bytes()) {
		t.Fatalf("got GET %d %s after creating %s, want the same resource", g.Code, g.Body.Bytes(), w.Body.Bytes())
	}
	if created != nil {
		created(s)
	}
	if d := a.call(http.MethodDelete, a.path("/webhooks/subscriptions/"+s.ID.String()), a.token, "", nil); d.Code != http.StatusNoContent {
		t.Fatalf("delete: got status %d, want 204", d.Code)
	}
	return true, p
}

// FuzzSubscriptionCreate posts subscription bodies.
func FuzzSubscriptionCreate(f *testing.F) {
	a := newFuzzAPI(f, f.TempDir())
	f.Fuzz(func(t *testing.T, body []byte) {
		createAndCheck(t, a, body, nil)
	})
}

// FuzzSubscriptionPatch sends merge patches to the fixture's subscription:
// a refused patch leaves it as it was; an accepted one is what a GET shows.
func FuzzSubscriptionPatch(f *testing.F) {
	a := newFuzzAPI(f, f.TempDir())
	f.Fuzz(func(t *testing.T, body []byte, mergePatch bool) {
		ct := "application/json"
		if mergePatch {
			ct = "application/merge-patch+json"
		}
		before, err := a.db.Subscription(a.customer, a.sub)
		if err != nil {
			t.Fatal(err)
		}
		w := a.call(http.MethodPatch, a.subPath(""), a.token, ct, body)
		ok, _ := checkAnswer(t, w, []int{http.StatusOK}, http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge)
		after, err := a.db.Subscription(a.customer, a.sub)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("got subscription %+v after a refused patch, want %+v", after, before)
			}
			return
		}
		g := a.call(http.MethodGet, a.subPath(""), a.token, "", nil)
		if g.Code != http.StatusOK || !bytes.Equal(g.Body.Bytes(), w.Body.Bytes()) {
			t.Fatalf("got GET %d %s after patching %s, want the same resource", g.Code, g.Body.Bytes(), w.Body.Bytes())
		}
		if len(after.Title) < 2 || after.Endpoint == "" {
			t.Fatalf("got stored subscription %+v, want a title and an endpoint", after)
		}
	})
}

// FuzzFilter creates a subscription with the fuzzed filter: refused, it is
// 400 naming filter; accepted, the stored filter is the one sent and an
// intake through it is recorded for it at most once.
func FuzzFilter(f *testing.F) {
	a := newFuzzAPI(f, f.TempDir())
	event := []byte(`{"type":"entityCreated","event":{"captureApplicationId":"app","captureClientId":"cl","entityType":"user","globalSub":"capture-v1://x/1","sub":"u-1","n":1}}`)
	f.Fuzz(func(t *testing.T, filter []byte) {
		body := append(append([]byte(`{"title":"filtered","endpoint":"http://127.0.0.1:9/x","events":["entityCreated"],"filter":`), filter...), '}')
		ok, p := createAndCheck(t, a, body, func(s subscriptionAnswer) {
			want, errW := decodeNumbers(filter)
			got, errG := decodeNumbers(s.Filter)
			if want == nil && errW == nil && len(s.Filter) == 0 {
				got, errG = nil, nil // "filter": null is no filter
			}
			if errW != nil || errG != nil || !reflect.DeepEqual(want, got) {
				t.Fatalf("got filter %s stored, want %s", s.Filter, filter)
			}
			w := a.call(http.MethodPost, a.path("/webhooks/events"), fuzzAdminToken, "application/json", event)
			if w.Code != http.StatusAccepted {
				t.Fatalf("intake through the filter: got %d %s, want 202", w.Code, w.Body.Bytes())
			}
			var ans fuzzIntakeAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil || ans.Accepted != 1 || ans.Recorded < 1 || ans.Recorded > 2 {
				t.Fatalf("got intake answer %s, want one event recorded for the fixture and at most once for the filtered subscription", w.Body.Bytes())
			}
		})
		if !ok && json.Valid(filter) && p.Type == "/invalid-body-params" {
			for _, param := range p.Params {
				if param.Name != "filter" && !strings.HasPrefix(param.Name, "filter.") && !strings.HasPrefix(param.Name, "filter[") {
					t.Fatalf("got invalid member %q for a body whose only fuzzed member is filter", param.Name)
				}
			}
		}
	})
}

// decodeNumbers decodes JSON keeping numbers as written.
func decodeNumbers(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// listAnswer is a paged list.
type listAnswer struct {
	Total    int                              `json:"total"`
	Links    map[string]struct{ Href string } `json:"_links"`
	Embedded map[string][]json.RawMessage     `json:"_embedded"`
}

// FuzzListQuery lists events (page, state, after, before), subscriptions
// and exports (page) with the fuzzed query parameters.
func FuzzListQuery(f *testing.F) {
	a := newFuzzAPI(f, f.TempDir())
	f.Fuzz(func(t *testing.T, page, state, after, before string) {
		q := url.Values{}
		for k, v := range map[string]string{"page": page, "state": state, "after": after, "before": before} {
			if v != "" {
				q.Set(k, v)
			}
		}
		w := a.call(http.MethodGet, a.subPath("/events?"+q.Encode()), a.token, "", nil)
		ok, p := checkAnswer(t, w, []int{http.StatusOK}, http.StatusBadRequest)
		if !ok {
			if p.Type != "/invalid-query" {
				t.Fatalf("got type %q, want /invalid-query", p.Type)
			}
		} else {
			var l listAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil || l.Links["self"].Href == "" || l.Embedded["events"] == nil {
				t.Fatalf("got list %s (%v), want total, _links.self and _embedded.events", w.Body.Bytes(), err)
			}
			evs := l.Embedded["events"]
			if len(evs) > eventPageSize || l.Total < 0 || l.Total > 6 {
				t.Fatalf("got %d events of total %d, want a page of at most %d of the fixture's 6", len(evs), l.Total, eventPageSize)
			}
			afterT, _ := time.Parse(time.RFC3339Nano, after)
			beforeT, _ := time.Parse(time.RFC3339Nano, before)
			for _, raw := range evs {
				var e struct{ State, CreatedAt string }
				if err := json.Unmarshal(raw, &e); err != nil {
					t.Fatal(err)
				}
				at, err := time.Parse(time.RFC3339Nano, e.CreatedAt)
				switch {
				case err != nil:
					t.Fatalf("got createdAt %q, want an RFC 3339 time", e.CreatedAt)
				case state != "" && e.State != state:
					t.Fatalf("got an event in %s listed for state=%s", e.State, state)
				case after != "" && !at.After(afterT):
					t.Fatalf("got an event created %s listed for after=%s", e.CreatedAt, after)
				case before != "" && !at.Before(beforeT):
					t.Fatalf("got an event created %s listed for before=%s", e.CreatedAt, before)
				}
			}
		}
		pq := url.Values{}
		if page != "" {
			pq.Set("page", page)
		}
		for _, list := range []struct{ path, member string }{{a.path("/webhooks/subscriptions"), "subscriptions"}, {a.subPath("/exports"), "exports"}} {
			w := a.call(http.MethodGet, list.path+"?"+pq.Encode(), a.token, "", nil)
			if ok, p := checkAnswer(t, w, []int{http.StatusOK}, http.StatusBadRequest); !ok {
				if p.Type != "/invalid-query" {
					t.Fatalf("%s: got type %q, want /invalid-query", list.path, p.Type)
				}
				continue
			}
			var l listAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil || l.Total != 1 || len(l.Embedded[list.member]) != 1 {
				t.Fatalf("%s: got %s (%v), want the fixture's one item", list.path, w.Body.Bytes(), err)
			}
		}
	})
}

// FuzzDownloadHeaders downloads the fixture's export with fuzzed Range,
// If-None-Match and If-Range headers: every answer is the whole file, the
// ranges asked for, 304 for a listed ETag, or 416.
func FuzzDownloadHeaders(f *testing.F) {
	a := newFuzzAPI(f, f.TempDir())
	f.Fuzz(func(t *testing.T, rangeHdr, ifNoneMatch, ifRange string) {
		r := httptest.NewRequest(http.MethodGet, a.subPath("/exports/"+a.export.String()+"/download"), nil)
		r.Header.Set("Authorization", "Bearer "+a.token)
		for k, v := range map[string]string{"Range": rangeHdr, "If-None-Match": ifNoneMatch, "If-Range": ifRange} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		w := a.do(r)
		body, size := w.Body.Bytes(), len(a.file)
		switch w.Code {
		case http.StatusOK:
			if !bytes.Equal(body, a.file) {
				t.Fatalf("got 200 with %d bytes, want the whole file of %d", len(body), size)
			}
		case http.StatusNotModified:
			if len(body) != 0 || !etagListed(ifNoneMatch, a.etag) {
				t.Fatalf("got 304 for If-None-Match %q (body %d bytes), want it only for a listed ETag", ifNoneMatch, len(body))
			}
		case http.StatusPartialContent:
			checkRanges(t, w, a.file)
		case http.StatusRequestedRangeNotSatisfiable:
			// A Range that does not parse is 416 without Content-Range
			// (http.ServeContent); an unsatisfiable one names the size.
			if got, want := w.Header().Get("Content-Range"), "bytes */"+strconv.Itoa(size); got != "" && got != want {
				t.Fatalf("got 416 with Content-Range %q, want %q", got, want)
			}
		default:
			t.Fatalf("got status %d for Range %q, If-None-Match %q, If-Range %q; want 200, 206, 304 or 416", w.Code, rangeHdr, ifNoneMatch, ifRange)
		}
		if w.Code != http.StatusRequestedRangeNotSatisfiable && w.Header().Get("ETag") != a.etag {
			t.Fatalf("got ETag %q, want %q", w.Header().Get("ETag"), a.etag)
		}
	})
}

// checkRanges checks a 206: each part is the file's bytes it names.
func checkRanges(t *testing.T, w *httptest.ResponseRecorder, file []byte) {
	t.Helper()
	part := func(contentRange string, data []byte) {
		var from, to, size int
		if _, err := fmt.Sscanf(contentRange, "bytes %d-%d/%d", &from, &to, &size); err != nil || size != len(file) || from < 0 || from > to || to >= size {
			t.Fatalf("got Content-Range %q, want a range of the %d-byte file", contentRange, len(file))
		}
		if !bytes.Equal(data, file[from:to+1]) {
			t.Fatalf("got %q for %s, want %q", data, contentRange, file[from:to+1])
		}
	}
	mt, params, err := mime.ParseMediaType(w.Header().Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		part(w.Header().Get("Content-Range"), w.Body.Bytes())
		return
	}
	mr := multipart.NewReader(bytes.NewReader(w.Body.Bytes()), params["boundary"])
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			if n < 2 {
				t.Fatalf("got %d parts in multipart/byteranges, want at least 2", n)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		part(p.Header.Get("Content-Range"), data)
	}
}

// FuzzTokenForm posts token requests: 200 issues one working token, every
// refusal issues none.
func FuzzTokenForm(f *testing.F) {
	a := newFuzzAPI(f, f.TempDir())
	// Every token issued is counted, and removed, by deleting the tokens
	// that "expire" before a time far ahead of any token's expiry.
	farAhead := time.Now().AddDate(100, 0, 0)
	if _, err := a.db.DeleteExpiredTokens(farAhead, 1<<20); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType, user, pass string) {
		r := httptest.NewRequest(http.MethodPost, a.path("/login/token"), bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if user == "fixture" {
			user = a.clientID.String()
		}
		if pass == "fixture" {
			pass = a.secret
		}
		if user != "" || pass != "" {
			r.SetBasicAuth(user, pass)
		}
		w := a.do(r)
		ok, _ := checkAnswer(t, w, []int{http.StatusOK}, http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
		if ok {
			var tok struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				ExpiresIn   int    `json:"expires_in"`
				Scope       string `json:"scope"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || len(tok.AccessToken) < 32 || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 || tok.Scope == "" {
				t.Fatalf("got token answer %s, want a complete token", w.Body.Bytes())
			}
			want := http.StatusForbidden
			if hasScope(tok.Scope, WebhooksScope) {
				want = http.StatusOK
			}
			if g := a.call(http.MethodGet, a.path("/webhooks/subscriptions"), tok.AccessToken, "", nil); g.Code != want {
				t.Fatalf("got %d with the token of scope %q, want %d", g.Code, tok.Scope, want)
			}
		} else if w.Code == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("got 401 without a Basic challenge")
		}
		issued, err := a.db.DeleteExpiredTokens(farAhead, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[ok]; issued != want {
			t.Fatalf("got %d tokens stored by a %d answer, want %d", issued, w.Code, want)
		}
	})
}
