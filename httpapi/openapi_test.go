package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hookd/store/bolt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gocloud.dev/blob/memblob"

	"hookd/delivery"
	"hookd/jobs"
	"hookd/recovery"
	"hookd/store"
	"hookd/web"
)

// loadOpenAPI loads the embedded description and validates it as an
// OpenAPI 3.1 document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi: got %q, want 3.1", doc.OpenAPI)
	}
	return doc
}

// openAPIPath turns a gorilla/mux path template into the OpenAPI form:
// "{eventId:[0-9a-f]{8}...}" becomes "{eventId}".
func openAPIPath(tpl string) string {
	var b strings.Builder
	for i := 0; i < len(tpl); i++ {
		if tpl[i] != '{' {
			b.WriteByte(tpl[i])
			continue
		}
		depth, name, inName := 0, "", true
		for ; i < len(tpl); i++ {
			switch c := tpl[i]; {
			case c == '{':
				depth++
			case c == '}':
				depth--
			case c == ':' && depth == 1:
				inName = false
			case inName && depth == 1:
				name += string(c)
			}
			if depth == 0 {
				break
			}
		}
		b.WriteString("{" + name + "}")
	}
	return b.String()
}

// registeredRoute is one route of the router, in OpenAPI form.
type registeredRoute struct {
	path    string
	prefix  bool // a PathPrefix route: it serves every path under path
	methods []string
}

func registeredRoutes(t *testing.T, s *Server) []registeredRoute {
	t.Helper()
	var out []registeredRoute
	err := s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		re, err := route.GetPathRegexp()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if err != nil {
			return fmt.Errorf("route %s has no methods: %w", tpl, err)
		}
		out = append(out, registeredRoute{path: openAPIPath(tpl), prefix: !strings.HasSuffix(re, "$"), methods: methods})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fullServer is the API with every optional route registered.
func fullServer(db *bolt.DB) *Server {
	return New(Options{DB: db, Console: web.Handler(), Metrics: promhttp.Handler()})
}

// TestOpenAPIDescribesEveryRoute walks the router: every route and method
// is described (HEAD through its GET), and every described path and method
// is a route.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	db, _, _ := testTenant(t)
	routes := registeredRoutes(t, fullServer(db))
	if len(routes) < 30 {
		t.Fatalf("got %d routes from the router, want the whole API", len(routes))
	}
	described := func(path, method string) bool {
		item := doc.Paths.Value(path)
		return item != nil && item.GetOperation(method) != nil
	}
	for _, r := range routes {
		for _, m := range r.methods {
			want := m
			if m == http.MethodHead {
				want = http.MethodGet
			}
			ok := described(r.path, want)
			if r.prefix && !ok {
				for _, p := range doc.Paths.InMatchingOrder() {
					if strings.HasPrefix(p, r.path) && described(p, want) {
						ok = true
					}
				}
			}
			if !ok {
				t.Errorf("route %s %s: not in openapi.json (want %s described)", m, r.path, want)
			}
		}
	}
	for _, p := range doc.Paths.InMatchingOrder() {
		for m := range doc.Paths.Value(p).Operations() {
			found := false
			for _, r := range routes {
				if (r.path == p || r.prefix && strings.HasPrefix(p, r.path)) && slices.Contains(r.methods, m) {
					found = true
				}
			}
			if !found {
				t.Errorf("openapi.json describes %s %s, which the router does not serve", m, p)
			}
		}
	}
}

// liveAPI is a real API server wired with the real delivery client and
// signing keys, the console, metrics and an exporter run by hand (so that a
// job stays processing until the test writes it).
type liveAPI struct {
	t        *testing.T
	api      *Server
	srv      *httptest.Server
	exporter *jobs.Exporter
	db       *bolt.DB
	doc      *openapi3.T
	router   routers.Router
	covered  map[string]bool // "<path> <METHOD> <status>" validated live
}

func newLiveAPI(t *testing.T) *liveAPI {
	db, err := bolt.Open(t.TempDir(), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	bucket := memblob.OpenBucket(nil)
	t.Cleanup(func() { bucket.Close() })
	client := delivery.NewClient(delivery.ClientOptions{Timeout: 5 * time.Second, Dev: true})
	t.Cleanup(func() { client.Close() })
	dispatcher := delivery.NewDispatcher(delivery.DispatcherOptions{DB: db, Client: client})
	reg := prometheus.NewRegistry()
	recoveries := recovery.New(recovery.Options{DB: db, Batch: 1, Wait: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }})
	recoveries.Start(context.Background())
	t.Cleanup(recoveries.Close)
	api := New(Options{
		Recoveries: recoveries,
		DB:         db, AdminToken: "admin-token-for-the-openapi-test", Console: web.Handler(),
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Registerer: reg, ClientRate: -1,
		Node: store.Node{ID: uuid.New(), Name: "openapi-test:8080", StartedAt: time.Now()},
		Hooks: Hooks{
			KeyGen:           delivery.NewKeySet,
			NewKeys:          delivery.NewStoredKeys,
			MissingKeys:      delivery.MissingKeyTriples,
			JWKS:             delivery.KeySetJWKS,
			CheckEndpoint:    func(ctx context.Context, raw string) error { return delivery.CheckEndpoint(ctx, raw, true, nil) },
			TestNotification: dispatcher.Test,
		},
		Exports: ExportOptions{Bucket: bucket, Scope: store.ScopeSubscription, Cooldown: time.Hour},
	})
	api.SetReady(true)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)

	doc := loadOpenAPI(t)
	doc.Servers = openapi3.Servers{{URL: srv.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &liveAPI{
		t: t, api: api, srv: srv, doc: doc, router: router, covered: map[string]bool{}, db: db,
		exporter: jobs.NewExporter(jobs.ExporterOptions{DB: db, Bucket: bucket}),
	}
}

// req is one call of the live test.
type req struct {
	method, path string
	auth         string // the Authorization header
	ct           string // Content-Type of body
	body         string
	header       map[string]string
	want         int
}

// do sends r (no redirect is followed), wants its status, validates the
// answer against openapi.json and returns the body.
func (a *liveAPI) do(r req) []byte {
	t := a.t
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, a.srv.URL+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.auth != "" {
		hr.Header.Set("Authorization", r.auth)
	}
	if r.ct != "" {
		hr.Header.Set("Content-Type", r.ct)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != r.want {
		t.Fatalf("%s %s: got status %d, want %d; body %.300s", r.method, r.path, resp.StatusCode, r.want, data)
	}

	// The route of the description; the request as sent (its body read again).
	vr, _ := http.NewRequest(r.method, a.srv.URL+r.path, bytes.NewReader([]byte(r.body)))
	vr.Header = hr.Header.Clone()
	route, params, err := a.router.FindRoute(vr)
	if err != nil {
		t.Fatalf("%s %s: not found in openapi.json: %v", r.method, r.path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	in.SetBodyBytes(data)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s: the %d answer does not match openapi.json: %v\nbody: %.500s", r.method, r.path, resp.StatusCode, err, data)
	}
	a.covered[fmt.Sprintf("%s %s %d", route.Path, r.method, resp.StatusCode)] = true
	return data
}

// decode is do with the JSON answer decoded into out.
func (a *liveAPI) decode(r req, out any) {
	a.t.Helper()
	data := a.do(r)
	if err := json.Unmarshal(data, out); err != nil {
		a.t.Fatalf("%s %s: decode %s: %v", r.method, r.path, data, err)
	}
}

// TestOpenAPILiveAnswers calls every route of the real handler, provoking
// every status that openapi.json names for it, and validates each answer
// against the description with kin-openapi's response validator
// (undocumented statuses fail). At the end every documented status of
// every operation must have been seen, so the description cannot name an
// answer hookd never gives, nor hookd give one it does not describe.
func TestOpenAPILiveAnswers(t *testing.T) {
	a := newLiveAPI(t)
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer listener.Close()
	admin := "Bearer admin-token-for-the-openapi-test"
	json_ := "application/json"
	unknown := uuid.NewString()

	// Service and console.
	a.do(req{method: "GET", path: "/", want: 302})
	if served := a.do(req{method: "GET", path: "/openapi.json", want: 200}); !bytes.Equal(served, openAPIDocument) {
		t.Errorf("GET /openapi.json: got %d bytes, want the embedded openapi.json (%d bytes)", len(served), len(openAPIDocument))
	}
	a.do(req{method: "GET", path: "/healthz", want: 200})
	a.do(req{method: "GET", path: "/readyz", want: 200})
	a.api.SetReady(false)
	a.do(req{method: "GET", path: "/readyz", want: 503})
	a.api.SetReady(true)
	a.do(req{method: "GET", path: "/metrics", want: 200})
	a.do(req{method: "GET", path: "/console", want: 301})
	a.do(req{method: "GET", path: "/console/", want: 200})
	for _, asset := range []string{"app.js", "style.css", "icon.svg", "index.html"} {
		a.do(req{method: "GET", path: "/console/" + asset, want: 200})
	}
	a.do(req{method: "GET", path: "/console/nope.js", want: 404})

	// Admin API: a customer with a client.
	cust := uuid.NewString()
	var cl struct{ ClientID, ClientSecret string }
	a.decode(req{method: "POST", path: "/admin/customers/" + cust + "/clients", auth: admin, want: 201}, &cl)
	var second struct{ ClientID string }
	a.decode(req{method: "POST", path: "/admin/customers/" + cust + "/clients", auth: admin, want: 201}, &second)
	a.do(req{method: "GET", path: "/admin/customers/" + cust + "/clients", auth: admin, want: 200})
	a.do(req{method: "DELETE", path: "/admin/customers/" + cust + "/clients/" + second.ClientID, auth: admin, want: 204})
	a.do(req{method: "DELETE", path: "/admin/customers/" + cust + "/clients/" + unknown, auth: admin, want: 404})
	a.do(req{method: "POST", path: "/admin/customers/" + cust + "/keys/rotate", auth: admin, want: 200})
	a.do(req{method: "POST", path: "/admin/customers/" + unknown + "/keys/rotate", auth: admin, want: 404})
	a.do(req{method: "GET", path: "/admin/backup", auth: admin, want: 200})
	var cluster struct {
		Nodes     []struct{ Name string }
		OldestDue *struct{ EventID string }
	}
	a.decode(req{method: "GET", path: "/admin/cluster", auth: admin, want: 200}, &cluster)
	if len(cluster.Nodes) != 1 || cluster.Nodes[0].Name != "openapi-test:8080" || cluster.OldestDue != nil {
		t.Errorf("cluster of the embedded store with nothing due: got %+v, want this node alone and no due event", cluster)
	}
	a.do(req{method: "GET", path: "/debug/pprof", auth: admin, want: 301})
	a.do(req{method: "GET", path: "/debug/pprof/", auth: admin, want: 200})
	a.do(req{method: "GET", path: "/debug/pprof/cmdline", auth: admin, want: 200})
	a.do(req{method: "POST", path: "/debug/pprof/symbol", auth: admin, ct: "text/plain", body: "0x1", want: 200})
	a.do(req{method: "GET", path: "/admin/backup", want: 401}) // the default answer

	// Tokens and keys.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {cl.ClientID}, "client_secret": {cl.ClientSecret}}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	formCT := "application/x-www-form-urlencoded"
	a.decode(req{method: "POST", path: "/" + cust + "/login/token", ct: formCT, body: form.Encode(), want: 200}, &tok)
	bearer := "Bearer " + tok.AccessToken
	a.do(req{method: "POST", path: "/" + cust + "/login/token", ct: formCT, body: "grant_type=password", auth: basic(cl.ClientID, cl.ClientSecret), want: 400})
	a.do(req{method: "POST", path: "/" + cust + "/login/token", ct: formCT, body: "grant_type=client_credentials", auth: basic(cl.ClientID, "wrong"), want: 401})
	a.do(req{method: "POST", path: "/" + cust + "/login/token", ct: json_, body: "{}", auth: basic(cl.ClientID, cl.ClientSecret), want: 415})
	a.do(req{method: "GET", path: "/" + cust + "/login/jwk", want: 200})
	a.do(req{method: "GET", path: "/" + unknown + "/login/jwk", want: 404})

	// Subscriptions.
	subs := "/" + cust + "/webhooks/subscriptions"
	create := func(title string, want int) string {
		body := fmt.Sprintf(`{"title":%q,"endpoint":%q,"events":["entityCreated","entityUpdated"],"filter":{"type":"object"}}`, title, listener.URL+"/hook")
		var s struct{ ID string }
		data := a.do(req{method: "POST", path: subs, auth: bearer, ct: json_, body: body, want: want})
		if want == 201 {
			_ = json.Unmarshal(data, &s)
		}
		return s.ID
	}
	sid := create("openapi subscription", 201)
	other := create("openapi other", 201)
	create("openapi subscription", 409)
	create("x", 400)
	a.do(req{method: "POST", path: subs, auth: bearer, ct: "text/plain", body: "{}", want: 415})
	a.do(req{method: "GET", path: subs, auth: bearer, want: 200})
	a.do(req{method: "GET", path: subs + "?page=0", auth: bearer, want: 400})
	sub := subs + "/" + sid
	a.do(req{method: "GET", path: sub, auth: bearer, want: 200})
	a.do(req{method: "GET", path: subs + "/" + unknown, auth: bearer, want: 404})
	merge := "application/merge-patch+json"
	a.do(req{method: "PATCH", path: sub, auth: bearer, ct: merge, body: `{"filter":null,"enabled":false,"signing":{"alg":"ES256"}}`, want: 200})
	a.do(req{method: "PATCH", path: sub, auth: bearer, ct: merge, body: `{"signing":{"alg":"HS256"}}`, want: 400})
	a.do(req{method: "PATCH", path: sub, auth: bearer, ct: merge, body: `{"title":"x"}`, want: 400})
	a.do(req{method: "PATCH", path: sub, auth: bearer, ct: merge, body: `{"title":"openapi other"}`, want: 409})
	a.do(req{method: "PATCH", path: sub, auth: bearer, ct: "text/plain", body: `{}`, want: 415})
	a.do(req{method: "PATCH", path: subs + "/" + unknown, auth: bearer, ct: merge, body: `{"enabled":true}`, want: 404})

	// Intake: events for the disabled subscription are stored as failures.
	intake := "/" + cust + "/webhooks/events"
	event := `{"type":"entityCreated","event":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":"s"}}`
	var in struct {
		Subscriptions []struct {
			SubscriptionID string
			EventIDs       []string
		}
	}
	a.decode(req{method: "POST", path: intake, auth: admin, ct: json_, body: event, want: 202}, &in)
	a.do(req{method: "POST", path: intake, auth: admin, ct: "application/x-ndjson", body: event + "\n" + event + "\n", want: 202})
	a.do(req{method: "POST", path: intake, auth: admin, ct: json_, body: `{"type":"entityCreated","event":{}}`, want: 400})
	a.do(req{method: "POST", path: "/" + unknown + "/webhooks/events", auth: admin, ct: json_, body: event, want: 404})
	a.do(req{method: "POST", path: intake, auth: admin, ct: "text/plain", body: event, want: 415})
	var failed string
	for _, s := range in.Subscriptions {
		if s.SubscriptionID == sid {
			failed = s.EventIDs[0]
		}
	}
	if failed == "" {
		t.Fatalf("intake: got %+v, want an event for %s", in, sid)
	}

	// Events.
	evs := sub + "/events"
	a.do(req{method: "GET", path: evs + "?order=desc&type=entityCreated&state=failure", auth: bearer, want: 200})
	a.do(req{method: "GET", path: evs + "?order=sideways", auth: bearer, want: 400})
	a.do(req{method: "GET", path: subs + "/" + unknown + "/events", auth: bearer, want: 404})
	a.do(req{method: "GET", path: evs + "/" + failed, auth: bearer, want: 200})
	a.do(req{method: "GET", path: evs + "/" + unknown, auth: bearer, want: 404})
	a.do(req{method: "GET", path: evs + "/" + failed + "/history", auth: bearer, want: 200})
	a.do(req{method: "GET", path: evs + "/" + unknown + "/history", auth: bearer, want: 404})
	// An attempt with a response and a body, recorded as the dispatcher
	// would (without a token: the event's is made by its export below),
	// so that the attempts answer has a response with every member.
	err := a.db.RecordAttempts([]store.AttemptResult{{SubscriptionID: uuid.MustParse(sid), Seq: store.EventSeq(uuid.MustParse(failed)),
		StartedAt: a.db.Now(), Endpoint: listener.URL + "/hook",
		Outcome: store.Failed, StatusCode: 500, Headers: []store.Header{{Name: "Content-Type", Value: "text/plain"}}, Body: []byte("down"),
		Duration: time.Millisecond, Reason: "status 500", Code: store.ReasonStatus5xx}})
	if err != nil {
		t.Fatal(err)
	}
	a.do(req{method: "GET", path: evs + "/" + failed + "/attempts", auth: bearer, want: 200})
	a.do(req{method: "GET", path: evs + "/" + unknown + "/attempts", auth: bearer, want: 404})
	a.do(req{method: "GET", path: evs + "?sub=s&txn=" + unknown, auth: bearer, want: 200})
	a.do(req{method: "POST", path: evs + "/" + failed + "/redeliver", auth: bearer, want: 409}) // disabled
	a.do(req{method: "POST", path: evs + "/redeliver", auth: bearer, want: 409})
	a.do(req{method: "POST", path: subs + "/" + unknown + "/events/redeliver", auth: bearer, want: 404})
	a.do(req{method: "POST", path: evs + "/" + unknown + "/redeliver", auth: bearer, want: 404})
	a.do(req{method: "GET", path: sub + "/summary", auth: bearer, want: 200})
	a.do(req{method: "GET", path: subs + "/" + unknown + "/summary", auth: bearer, want: 404})
	a.do(req{method: "GET", path: sub + "/summary/timeline", auth: bearer, want: 200})
	a.do(req{method: "GET", path: subs + "/" + unknown + "/summary/timeline", auth: bearer, want: 404})
	a.do(req{method: "POST", path: sub + "/test", auth: bearer, want: 200})
	a.do(req{method: "POST", path: subs + "/" + unknown + "/test", auth: bearer, want: 404})

	// Exports, under both path forms. No exporter runs until the test
	// calls it, so a new job stays processing and can be canceled.
	replayed := 0 // events replayed to the first subscription from its export
	for i, form := range []string{"/exports", "/events/exports"} {
		exports := sub + form
		if i == 1 {
			// The second form exports the other subscription's failures.
			a.do(req{method: "PATCH", path: subs + "/" + other, auth: bearer, ct: merge, body: `{"enabled":false}`, want: 200})
			a.do(req{method: "POST", path: intake, auth: admin, ct: json_, body: event, want: 202})
			exports = subs + "/" + other + form
		}
		var job struct{ ID string }
		a.decode(req{method: "POST", path: exports, auth: bearer, want: 202}, &job)
		a.do(req{method: "POST", path: exports, auth: bearer, want: 409}) // one active job per subscription
		a.do(req{method: "GET", path: exports + "/" + job.ID, auth: bearer, want: 200})
		a.do(req{method: "DELETE", path: exports + "/" + job.ID, auth: bearer, want: 200})
		canceled := job.ID
		a.do(req{method: "DELETE", path: exports + "/" + job.ID, auth: bearer, want: 409})
		a.do(req{method: "DELETE", path: exports + "/" + unknown, auth: bearer, want: 404})
		a.do(req{method: "GET", path: exports + "/" + unknown, auth: bearer, want: 404})
		a.do(req{method: "POST", path: exports, auth: bearer, ct: json_, body: `{"encoding":"rar"}`, want: 400})
		a.do(req{method: "POST", path: subs + "/" + unknown + form, auth: bearer, want: 404})
		a.decode(req{method: "POST", path: exports, auth: bearer, ct: json_, body: `{"encoding":"gzip"}`, want: 202}, &job)
		if n, err := a.exporter.RunOnce(t.Context()); err != nil || n != 1 {
			t.Fatalf("exporter: got %d jobs written, %v; want 1", n, err)
		}
		a.do(req{method: "GET", path: exports, auth: bearer, want: 200})
		a.do(req{method: "GET", path: exports + "?page=0", auth: bearer, want: 400})
		a.do(req{method: "GET", path: subs + "/" + unknown + form, auth: bearer, want: 404})
		a.do(req{method: "POST", path: exports, auth: bearer, want: 409}) // the cooldown
		download := exports + "/" + job.ID + "/download"
		resp, err := http.DefaultClient.Do(mustRequest(t, a.srv.URL+download, bearer))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		etag := resp.Header.Get("ETag")
		a.do(req{method: "GET", path: download, auth: bearer, want: 200})
		a.do(req{method: "GET", path: download, auth: bearer, header: map[string]string{"Range": "bytes=0-3"}, want: 206})
		a.do(req{method: "GET", path: download, auth: bearer, header: map[string]string{"If-None-Match": etag}, want: 304})
		a.do(req{method: "GET", path: exports + "/" + unknown + "/download", auth: bearer, want: 404})
		var rep struct{ Recorded, Duplicates int }
		a.decode(req{method: "POST", path: exports + "/" + job.ID + "/replay", auth: bearer, want: 202}, &rep)
		if rep.Recorded == 0 || rep.Duplicates != 0 {
			t.Errorf("replay of export %s: got %d recorded, %d duplicates; want its events recorded", job.ID, rep.Recorded, rep.Duplicates)
		}
		if i == 0 {
			replayed = rep.Recorded
		}
		a.do(req{method: "POST", path: exports + "/" + canceled + "/replay", auth: bearer, want: 409})
		a.do(req{method: "POST", path: exports + "/" + job.ID + "/replay?fromLine=0", auth: bearer, want: 400})
		a.do(req{method: "POST", path: exports + "/" + unknown + "/replay", auth: bearer, want: 404})
	}

	// Replay of export lines by the operator.
	replay := "/admin/customers/" + cust + "/subscriptions/" + other + "/replay"
	line := `{"iss":"x","iat":1,"jti":"` + uuid.NewString() + `","aud":["https://x"],"toe":1,"events":{"entityCreated":{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":"s"}}}`
	ndjson := "application/x-ndjson"
	var lines struct{ Recorded int }
	a.decode(req{method: "POST", path: replay, auth: admin, ct: ndjson, body: line + "\n", want: 202}, &lines)
	if lines.Recorded != 1 {
		t.Errorf("replay of a line: got %d recorded, want 1", lines.Recorded)
	}
	a.do(req{method: "POST", path: replay, auth: admin, ct: ndjson, body: event + "\n", want: 400}) // an intake event, not claims
	a.do(req{method: "POST", path: replay, auth: admin, ct: json_, body: line, want: 415})
	a.do(req{method: "POST", path: "/admin/customers/" + cust + "/subscriptions/" + unknown + "/replay", auth: admin, ct: ndjson, body: line, want: 404})

	// Redelivery once the subscription is enabled again.
	a.do(req{method: "PATCH", path: sub, auth: bearer, ct: json_, body: `{"enabled":true}`, want: 200})
	a.do(req{method: "POST", path: evs + "/" + failed + "/redeliver", auth: bearer, want: 202})
	a.do(req{method: "POST", path: evs + "/" + failed + "/redeliver", auth: bearer, want: 409}) // no longer failed
	a.decode(req{method: "GET", path: "/admin/cluster", auth: admin, want: 200}, &cluster)
	if cluster.OldestDue == nil || cluster.OldestDue.EventID != failed {
		t.Errorf("cluster after the redelivery: got oldest due %+v, want the redelivered event %s", cluster.OldestDue, failed)
	}
	// The recovery takes one event at a time and never looks again, so
	// that it stays running until canceled.
	var rec struct {
		ID             string
		State          string
		Count, Matched int
	}
	a.do(req{method: "POST", path: evs + "/redeliver", auth: bearer, ct: json_, body: `{"after":"yesterday"}`, want: 400})
	a.decode(req{method: "POST", path: evs + "/redeliver", auth: bearer, want: 202}, &rec)
	if rec.State != "running" || rec.Count != 1 || rec.Matched != 3+replayed {
		t.Errorf("redeliver all: got %+v, want running with 1 of the 3 other failed events and the %d replayed", rec, replayed)
	}
	a.do(req{method: "POST", path: evs + "/redeliver", auth: bearer, want: 409}) // one recovery at a time
	a.do(req{method: "GET", path: evs + "/redeliver/" + rec.ID, auth: bearer, want: 200})
	a.do(req{method: "GET", path: evs + "/redeliver/" + unknown, auth: bearer, want: 404})
	a.do(req{method: "DELETE", path: evs + "/redeliver/" + rec.ID, auth: bearer, want: 200})
	a.do(req{method: "DELETE", path: evs + "/redeliver/" + rec.ID, auth: bearer, want: 409})
	a.do(req{method: "DELETE", path: evs + "/redeliver/" + unknown, auth: bearer, want: 404})
	a.do(req{method: "DELETE", path: sub, auth: bearer, want: 204})
	a.do(req{method: "DELETE", path: sub, auth: bearer, want: 404})

	// Every documented status of every operation was seen.
	var missing []string
	for _, p := range a.doc.Paths.InMatchingOrder() {
		for m, op := range a.doc.Paths.Value(p).Operations() {
			for code := range op.Responses.Map() {
				if code == "default" {
					continue
				}
				if key := p + " " + m + " " + code; !a.covered[key] {
					missing = append(missing, key)
				}
			}
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("openapi.json documents %s, but no live answer had it", k)
	}
}

func basic(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

func mustRequest(t *testing.T, url, auth string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", auth)
	return r
}
