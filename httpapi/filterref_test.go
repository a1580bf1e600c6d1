package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestFilterExternalRefs: a $ref that does not resolve inside the filter is
// 400 naming filter on create and on patch, however its base URI was set,
// and nothing is fetched or stored; references to the filter's own parts,
// by pointer or by an $id it declares, are accepted.
func TestFilterExternalRefs(t *testing.T) {
	var fetched atomic.Int32
	schemas := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"type":"object"}`))
	}))
	defer schemas.Close()
	remote := schemas.URL // http://127.0.0.1:P

	db, cust, token := testTenant(t)
	_, url := testAPI(t, db, Options{})
	coll := url + "/" + cust.String() + "/webhooks/subscriptions"

	res := callAPI(t, http.MethodPost, coll, token, "application/json", strings.NewReader(subscriptionBody("to patch", "")))
	if res.Status != http.StatusCreated {
		t.Fatalf("create: got %d %s", res.Status, res.Body)
	}
	patchURL := url + res.Header.Get("Location")

	bad := []struct{ name, filter string }{
		{"absolute $id at the root, relative $ref", `{"$id":"` + remote + `/","$ref":"x.json"}`},
		{"absolute $ref", `{"$ref":"` + remote + `/schema.json"}`},
		{"relative $ref", `{"$ref":"x.json"}`},
		{"relative $ref in a subschema", `{"properties":{"entityCreated":{"$ref":"x.json#/definitions/a"}}}`},
		{"scheme-relative $ref", `{"$ref":"//` + strings.TrimPrefix(remote, "http://") + `/x.json"}`},
		{"relative $id at the root", `{"$id":"base/","properties":{"entityCreated":{"$ref":"other.json"}}}`},
		{"absolute $id nested", `{"properties":{"entityCreated":{"$id":"` + remote + `/a/","properties":{"sub":{"$ref":"x.json"}}}}}`},
		{"relative $id nested", `{"properties":{"entityCreated":{"$id":"sub/","properties":{"sub":{"$ref":"x.json"}}}}}`},
		{"$id in definitions, $ref to a sibling", `{"definitions":{"a":{"$id":"` + remote + `/a.json","type":"object"}},"$ref":"` + remote + `/b.json"}`},
		{"file $ref", `{"$ref":"file:///etc/passwd"}`},
		{"meta-schema $ref", `{"$ref":"http://json-schema.org/draft-07/schema#"}`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			for _, call := range []struct {
				method, url, contentType, body string
			}{
				{http.MethodPost, coll, "application/json", subscriptionBody("external ref", tc.filter)},
				{http.MethodPatch, patchURL, "application/merge-patch+json", `{"filter":` + tc.filter + `}`},
			} {
				res := callAPI(t, call.method, call.url, token, call.contentType, strings.NewReader(call.body))
				p := res.Problem
				if res.Status != http.StatusBadRequest || p.Type != "/invalid-body-params" || len(p.Params) != 1 || p.Params[0].Name != "filter" ||
					!strings.Contains(p.Params[0].Reason, "must not refer outside itself") {
					t.Errorf("%s: got %d %s, want 400 /invalid-body-params naming filter, which must not refer outside itself", call.method, res.Status, res.Body)
				}
			}
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("got %d fetches of the remote schema, want none", n)
	}
	subs, err := db.Subscriptions(cust)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0].Filter != nil {
		t.Errorf("got %d subscriptions (filter %s), want only the first, without a filter", len(subs), subs[0].Filter)
	}

	good := []struct{ name, filter string }{
		{"pointer $ref", `{"$ref":"#/definitions/a","definitions":{"a":{"type":"object"}}}`},
		{"$ref to an $id the filter declares", `{"$id":"` + remote + `/root.json","definitions":{"a":{"$id":"a.json","type":"object"}},"properties":{"entityCreated":{"$ref":"a.json"}}}`},
		{"$ref to an $id declared without a base", `{"definitions":{"a":{"$id":"#user","type":"object"}},"properties":{"entityCreated":{"$ref":"#user"}}}`},
	}
	for _, tc := range good {
		res := callAPI(t, http.MethodPatch, patchURL, token, "application/merge-patch+json", strings.NewReader(`{"filter":`+tc.filter+`}`))
		if res.Status != http.StatusOK {
			t.Errorf("%s: got %d %s, want 200", tc.name, res.Status, res.Body)
		}
	}
}
