package e2e

// The adversarial suite: every token-guarded route × every kind of broken,
// foreign or misplaced token, against the real server. Each answer has an
// exact status, none changes anything, and a token of another customer
// learns nothing: an id that exists and one that never did get the same
// answer.

import (
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/delivery"
	"hookd/store"
)

// guardedRoute is one method of a route that needs a token; path uses the
// template names of httpapi/routes.go.
type guardedRoute struct {
	method string
	path   string
	admin  bool // the admin token, not an access token
	body   any
}

// adversarialRoutes lists every guarded method and route. TestAdversarialMatrix
// checks it against httpapi/routes.go, so a new route cannot be missed.
func adversarialRoutes() []guardedRoute {
	sub := map[string]any{"title": "intruder", "endpoint": "http://127.0.0.1:1/x", "events": []string{}}
	event := map[string]any{"type": "entityCreated", "event": map[string]any{"captureApplicationId": "app", "captureClientId": "cl",
		"entityType": "user", "globalSub": "capture-v1://x/1", "sub": "u-1"}}
	const s = "/{customerId}/webhooks/subscriptions"
	rs := []guardedRoute{
		{http.MethodPost, "/{customerId}/webhooks/events", true, event},
		{http.MethodPost, "/admin/customers/{customerId}/clients", true, nil},
		{http.MethodGet, "/admin/customers/{customerId}/clients", true, nil},
		{http.MethodHead, "/admin/customers/{customerId}/clients", true, nil},
		{http.MethodDelete, "/admin/customers/{customerId}/clients/{clientId}", true, nil},
		{http.MethodPost, "/admin/customers/{customerId}/keys/rotate", true, nil},
		{http.MethodPost, "/admin/customers/{customerId}/subscriptions/{subscriptionId}/replay", true, nil},
		{http.MethodGet, "/admin/backup", true, nil},
		{http.MethodHead, "/admin/backup", true, nil},
		{http.MethodGet, "/admin/cluster", true, nil},
		{http.MethodHead, "/admin/cluster", true, nil},
		{http.MethodGet, "/debug/pprof/", true, nil},
		{http.MethodHead, "/debug/pprof/", true, nil},
		{http.MethodPost, "/debug/pprof/", true, nil},

		{http.MethodPost, s, false, sub},
		{http.MethodGet, s, false, nil},
		{http.MethodHead, s, false, nil},
		{http.MethodGet, s + "/{subscriptionId}", false, nil},
		{http.MethodHead, s + "/{subscriptionId}", false, nil},
		{http.MethodPatch, s + "/{subscriptionId}", false, map[string]any{"enabled": false}},
		{http.MethodDelete, s + "/{subscriptionId}", false, nil},
		{http.MethodGet, s + "/{subscriptionId}/events", false, nil},
		{http.MethodHead, s + "/{subscriptionId}/events", false, nil},
		{http.MethodPost, s + "/{subscriptionId}/events/redeliver", false, nil},
		{http.MethodGet, s + "/{subscriptionId}/events/redeliver/{recoveryId}", false, nil},
		{http.MethodHead, s + "/{subscriptionId}/events/redeliver/{recoveryId}", false, nil},
		{http.MethodDelete, s + "/{subscriptionId}/events/redeliver/{recoveryId}", false, nil},
		{http.MethodGet, s + "/{subscriptionId}/events/{eventId}", false, nil},
		{http.MethodHead, s + "/{subscriptionId}/events/{eventId}", false, nil},
		{http.MethodGet, s + "/{subscriptionId}/events/{eventId}/history", false, nil},
		{http.MethodHead, s + "/{subscriptionId}/events/{eventId}/history", false, nil},
		{http.MethodGet, s + "/{subscriptionId}/events/{eventId}/attempts", false, nil},
		{http.MethodHead, s + "/{subscriptionId}/events/{eventId}/attempts", false, nil},
		{http.MethodPost, s + "/{subscriptionId}/events/{eventId}/redeliver", false, nil},
		{http.MethodPost, s + "/{subscriptionId}/test", false, nil},
		{http.MethodGet, s + "/{subscriptionId}/summary", false, nil},
		{http.MethodHead, s + "/{subscriptionId}/summary", false, nil},
		{http.MethodGet, s + "/{subscriptionId}/summary/timeline", false, nil},
		{http.MethodHead, s + "/{subscriptionId}/summary/timeline", false, nil},
	}
	for _, base := range []string{s + "/{subscriptionId}/exports", s + "/{subscriptionId}/events/exports"} {
		rs = append(rs,
			guardedRoute{http.MethodPost, base, false, nil},
			guardedRoute{http.MethodGet, base, false, nil},
			guardedRoute{http.MethodHead, base, false, nil},
			guardedRoute{http.MethodGet, base + "/{exportId}", false, nil},
			guardedRoute{http.MethodHead, base + "/{exportId}", false, nil},
			guardedRoute{http.MethodDelete, base + "/{exportId}", false, nil},
			guardedRoute{http.MethodGet, base + "/{exportId}/download", false, nil},
			guardedRoute{http.MethodHead, base + "/{exportId}/download", false, nil},
			guardedRoute{http.MethodPost, base + "/{exportId}/replay", false, nil},
		)
	}
	return rs
}

// routesFile is the source of every route.
const routesFile = "../httpapi/routes.go"

var (
	routeLineRe    = regexp.MustCompile(`r\.(?:Handle\("([^"]+)", |PathPrefix\("([^"]+)"\)\.Handler\()s\.(\w+)\(.*\.Methods\(([^)]*)\)`)
	routePatternRe = regexp.MustCompile(`:"\+\w+\+"`)
)

// guardedRoutesInSource reads routes.go and returns "METHOD path" for every
// route behind the admin or the customer guard.
func guardedRoutesInSource(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(routesFile)
	if err != nil {
		t.Fatalf("read %s: %v", routesFile, err)
	}
	var out []string
	for _, line := range strings.Split(string(src), "\n") {
		line = routePatternRe.ReplaceAllString(line, "") // {eventId:"+uuidPattern+"} -> {eventId}
		m := routeLineRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if m[1] == "" { // a PathPrefix route
			m[1] = m[2]
		}
		m = []string{m[0], m[1], m[3], m[4]}
		switch m[2] {
		case "admin", "adminStream", "customer", "customerStream":
		default:
			continue
		}
		for _, meth := range strings.Split(m[3], ",") {
			meth = strings.ToUpper(strings.TrimPrefix(strings.TrimSpace(meth), "http.Method"))
			out = append(out, meth+" "+m[1])
		}
	}
	sort.Strings(out)
	return out
}

// tokenKind is one way a request can carry the wrong credentials.
type tokenKind struct {
	name     string
	header   func(own tenant) string // the Authorization header; "" sends none
	customer int                     // status on a customer route
	admin    int                     // status on an admin route
}

func TestAdversarialMatrix(t *testing.T) {
	dir := t.TempDir()

	// Customer a exists before hookd starts, with an access token that has
	// expired a minute ago: written to the store as the token endpoint
	// would have written it, so that no test waits for a token to expire.
	// (Expired tokens are kept a day, so the janitor's first run keeps it.)
	a := tenant{Customer: uuid.New(), ClientID: uuid.NewString()}
	a.Secret = uuid.NewString()
	expired := uuid.NewString()
	db := openStore(t, dir)
	if _, err := db.CreateClient(a.Customer, uuid.MustParse(a.ClientID), store.HashSecret(a.Secret), delivery.NewKeySet); err != nil {
		t.Fatal(err)
	}
	if err := db.PutToken(store.HashSecret(expired), store.Token{CustomerID: a.Customer, ClientID: uuid.MustParse(a.ClientID),
		Scope: "*:webhooks/**", ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	h := startHookd(t, dir, "--client-rate", "0", "--export-cooldown", "0")
	a.Token = h.token(a.Customer, a.ClientID, a.Secret)
	b := h.newTenant()

	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(listener.Close)

	// a's data: a subscription with one event and one export job. It is
	// disabled, so that its event is stored as failed and can be exported.
	var subA, subB struct{ ID string }
	h.mustCall(http.StatusCreated, http.MethodPost, a.path("/webhooks/subscriptions"), a.Token,
		map[string]any{"title": "a's", "endpoint": listener.URL, "events": []string{"entityCreated"}, "enabled": false}, &subA)
	h.mustCall(http.StatusCreated, http.MethodPost, b.path("/webhooks/subscriptions"), b.Token,
		map[string]any{"title": "b's", "endpoint": listener.URL, "events": []string{"entityCreated"}}, &subB)
	var intake struct {
		Subscriptions []struct{ EventIDs []string }
	}
	h.mustCall(http.StatusAccepted, http.MethodPost, a.path("/webhooks/events"), h.AdminToken, adversarialRoutes()[0].body, &intake)
	if len(intake.Subscriptions) != 1 || len(intake.Subscriptions[0].EventIDs) != 1 {
		t.Fatalf("got intake answer %+v, want one event for a's subscription", intake)
	}
	eventA := intake.Subscriptions[0].EventIDs[0]
	var exportA struct{ ID string }
	h.mustCall(http.StatusAccepted, http.MethodPost, a.path("/webhooks/subscriptions/"+subA.ID+"/exports"), a.Token, nil, &exportA)

	// A second client of a, revoked after it got a token.
	var cl struct{ ClientID, ClientSecret string }
	h.mustCall(http.StatusCreated, http.MethodPost, "/admin/customers/"+a.Customer.String()+"/clients", h.AdminToken, nil, &cl)
	revoked := h.token(a.Customer, cl.ClientID, cl.ClientSecret)
	h.mustCall(http.StatusNoContent, http.MethodDelete, "/admin/customers/"+a.Customer.String()+"/clients/"+cl.ClientID, h.AdminToken, nil, nil)

	// A token of a's client without the webhooks scope.
	resp, data := tokenRequest(t, h, a.Customer.String(), a.ClientID, a.Secret, map[string][]string{"grant_type": {"client_credentials"}, "scope": {"other:thing"}}, false)
	var scoped struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), "other:thing") {
		t.Fatalf("token with scope other:thing: got %d %s, want 200", resp.StatusCode, data)
	}
	scoped.AccessToken = regexp.MustCompile(`"access_token":"([^"]+)"`).FindStringSubmatch(string(data))[1]

	// What a looks like before the matrix, to check that nothing changed.
	stateOfA := func() string {
		var out []string
		for _, p := range []string{
			a.path("/webhooks/subscriptions"),
			a.path("/webhooks/subscriptions/" + subA.ID + "/events/" + eventA),
			"/admin/customers/" + a.Customer.String() + "/clients",
			a.path("/login/jwk"),
		} {
			resp, data := h.call(http.MethodGet, p, h.AdminToken, nil)
			if strings.HasPrefix(p, "/"+a.Customer.String()+"/webhooks") {
				resp, data = h.call(http.MethodGet, p, a.Token, nil)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: got status %d, want 200; body %s", p, resp.StatusCode, data)
			}
			out = append(out, string(data))
		}
		var job struct{ State string }
		h.mustCall(http.StatusOK, http.MethodGet, a.path("/webhooks/subscriptions/"+subA.ID+"/exports/"+exportA.ID), a.Token, nil, &job)
		if job.State == "canceled" {
			t.Errorf("got a's export job canceled, want it untouched")
		}
		return strings.Join(out, "\n")
	}
	// The export job's state (and the event's exportedAt) may still move on
	// their own: wait until the export completed, so the snapshot is stable.
	if j := waitExport(h, a, a.path("/webhooks/subscriptions/"+subA.ID+"/exports/"+exportA.ID)); j.State != "completed" {
		t.Fatalf("a's export: got %s, want completed", j.State)
	}
	// And a recovery, which needs the subscription enabled for a moment;
	// it selects nothing.
	var recoveryA struct{ ID, State string }
	h.mustCall(http.StatusOK, http.MethodPatch, a.path("/webhooks/subscriptions/"+subA.ID), a.Token, map[string]any{"enabled": true}, nil)
	h.mustCall(http.StatusAccepted, http.MethodPost, a.path("/webhooks/subscriptions/"+subA.ID+"/events/redeliver"), a.Token,
		map[string]any{"after": "2999-01-01T00:00:00Z"}, &recoveryA)
	h.mustCall(http.StatusOK, http.MethodPatch, a.path("/webhooks/subscriptions/"+subA.ID), a.Token, map[string]any{"enabled": false}, nil)
	if recoveryA.State != "completed" {
		t.Fatalf("a's recovery: got %s, want completed", recoveryA.State)
	}
	before := stateOfA()
	var listB struct{ Total int }
	h.mustCall(http.StatusOK, http.MethodGet, b.path("/webhooks/subscriptions"), b.Token, nil, &listB)

	t.Run("every guarded route is in the matrix", func(t *testing.T) {
		var listed []string
		for _, r := range adversarialRoutes() {
			listed = append(listed, r.method+" "+r.path)
		}
		sort.Strings(listed)
		inSource := guardedRoutesInSource(t)
		if strings.Join(listed, "\n") != strings.Join(inSource, "\n") {
			t.Errorf("got matrix routes\n%s\nwant the guarded routes of %s\n%s", strings.Join(listed, "\n"), routesFile, strings.Join(inSource, "\n"))
		}
	})

	kinds := []tokenKind{
		{"no token", func(tenant) string { return "" }, http.StatusUnauthorized, http.StatusUnauthorized},
		{"malformed", func(own tenant) string { return "Bearer " + own.Token + " " + own.Token }, http.StatusUnauthorized, http.StatusUnauthorized},
		{"basic scheme", func(own tenant) string { return "Basic " + own.ClientID }, http.StatusUnauthorized, http.StatusUnauthorized},
		{"unknown", func(tenant) string { return "Bearer " + strings.Repeat("A", 43) }, http.StatusUnauthorized, http.StatusForbidden},
		{"expired", func(tenant) string { return "Bearer " + expired }, http.StatusForbidden, http.StatusForbidden},
		{"revoked", func(tenant) string { return "Bearer " + revoked }, http.StatusForbidden, http.StatusForbidden},
		{"wrong scope", func(tenant) string { return "Bearer " + scoped.AccessToken }, http.StatusForbidden, http.StatusForbidden},
		{"another customer's", func(tenant) string { return "Bearer " + b.Token }, http.StatusForbidden, http.StatusForbidden},
		{"admin for customer", func(tenant) string { return "Bearer " + h.AdminToken }, http.StatusUnauthorized, 0}, // 0: the admin's own route
		{"customer for admin", func(tenant) string { return "Bearer " + a.Token }, 0, http.StatusForbidden},         // 0: the customer's own route
	}

	// The same route with a's ids and with ids that never existed.
	ids := func(existing bool) map[string]string {
		if existing {
			return map[string]string{"customerId": a.Customer.String(), "subscriptionId": subA.ID, "eventId": eventA,
				"exportId": exportA.ID, "clientId": a.ClientID, "recoveryId": recoveryA.ID}
		}
		return map[string]string{"customerId": uuid.NewString(), "subscriptionId": uuid.NewString(), "eventId": uuid.NewString(),
			"exportId": uuid.NewString(), "clientId": uuid.NewString(), "recoveryId": uuid.NewString()}
	}
	allIDs := []map[string]string{ids(true), ids(false)}
	normalize := func(data []byte, used map[string]string) string {
		s := string(data)
		for _, id := range used {
			s = strings.ReplaceAll(s, id, "<id>")
		}
		return s
	}

	for _, rt := range adversarialRoutes() {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			for _, k := range kinds {
				want := k.customer
				if rt.admin {
					want = k.admin
				}
				if want == 0 {
					continue
				}
				var got [2]string
				for i, existing := range []bool{true, false} {
					used := ids(existing)
					allIDs = append(allIDs, used)
					p := expandPath(rt.path, used)
					var hdr []string
					if v := k.header(a); v != "" {
						hdr = []string{"Authorization", v}
					}
					resp, data := h.call(rt.method, p, "", rt.body, hdr...)
					if resp.StatusCode != want {
						t.Errorf("%s: %s %s: got status %d, want %d; body %s", k.name, rt.method, p, resp.StatusCode, want, data)
						continue
					}
					if rt.method != http.MethodHead {
						readProblem(t, resp, data, want)
					}
					if challenge := resp.Header.Get("WWW-Authenticate"); want == http.StatusUnauthorized && !strings.HasPrefix(challenge, "Bearer") {
						t.Errorf("%s: %s %s: got WWW-Authenticate %q, want a Bearer challenge", k.name, rt.method, p, challenge)
					}
					got[i] = resp.Status + " " + normalize(data, used)
				}
				if got[0] != got[1] {
					t.Errorf("%s: got %q for a's ids and %q for ids that never existed, want the same answer", k.name, got[0], got[1])
				}
			}
		})
	}

	// On its own paths, b's token gets the same 404 for a's ids as for ids
	// that never existed.
	t.Run("a's ids on b's paths", func(t *testing.T) {
		for _, rt := range adversarialRoutes() {
			if rt.admin || !strings.Contains(rt.path, "{subscriptionId}") {
				continue
			}
			for _, own := range []bool{false, true} { // a's subscription, then b's own with a's event and job
				if own && !strings.Contains(rt.path, "{eventId}") && !strings.Contains(rt.path, "{exportId}") && !strings.Contains(rt.path, "{recoveryId}") {
					continue
				}
				var got [2]string
				for i, existing := range []bool{true, false} {
					used := ids(existing)
					used["customerId"] = b.Customer.String()
					if own {
						used["subscriptionId"] = subB.ID
					}
					p := expandPath(rt.path, used)
					resp, data := h.call(rt.method, p, b.Token, rt.body)
					if resp.StatusCode != http.StatusNotFound {
						t.Errorf("%s %s: got status %d, want 404; body %s", rt.method, p, resp.StatusCode, data)
						continue
					}
					delete(used, "customerId")
					delete(used, "subscriptionId")
					got[i] = normalize(data, used)
				}
				if got[0] != got[1] {
					t.Errorf("%s %s: got %q for a's ids and %q for ids that never existed, want the same answer", rt.method, rt.path, got[0], got[1])
				}
			}
		}
	})

	t.Run("nothing changed", func(t *testing.T) {
		if after := stateOfA(); after != before {
			t.Errorf("got a's state\n%s\nafter the matrix, want\n%s", after, before)
		}
		var l struct{ Total int }
		h.mustCall(http.StatusOK, http.MethodGet, b.path("/webhooks/subscriptions"), b.Token, nil, &l)
		if l.Total != listB.Total {
			t.Errorf("got %d subscriptions of b, want %d", l.Total, listB.Total)
		}
		// The refused intakes recorded nothing for a.
		var sum struct{ Total int }
		h.mustCall(http.StatusOK, http.MethodGet, a.path("/webhooks/subscriptions/"+subA.ID+"/summary"), a.Token, nil, &sum)
		if sum.Total != 1 {
			t.Errorf("got %d events of a's subscription, want 1", sum.Total)
		}
		// Tokens of unknown customers' paths created no customer.
		for _, used := range allIDs {
			resp, _ := h.call(http.MethodGet, "/"+used["customerId"]+"/login/jwk", "", nil)
			if want := used["customerId"] == a.Customer.String(); (resp.StatusCode == http.StatusOK) != want {
				t.Errorf("GET jwk of %s: got status %d, want a customer only for a", used["customerId"], resp.StatusCode)
			}
		}
	})
}

// expandPath fills a route template's {names}.
func expandPath(template string, ids map[string]string) string {
	out := template
	for k, v := range ids {
		out = strings.ReplaceAll(out, "{"+k+"}", v)
	}
	return out
}
