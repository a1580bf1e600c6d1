package e2e

// End-to-end tests of SPEC sections 3 and 4: the subscription calls, their
// validation, paging, merge patches and the problem answers.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// subJSON is a subscription resource as served.
type subJSON struct {
	ID         string          `json:"id"`
	CustomerID string          `json:"customerId"`
	Title      string          `json:"title"`
	Endpoint   string          `json:"endpoint"`
	Events     []string        `json:"events"`
	Enabled    bool            `json:"enabled"`
	Filter     json.RawMessage `json:"filter"`
	CreatedAt  string          `json:"createdAt"`
	UpdatedAt  string          `json:"updatedAt"`
	Links      map[string]struct {
		Href string `json:"href"`
	} `json:"_links"`
}

// subList is a page of the subscription list.
type subList struct {
	Total int `json:"total"`
	Links map[string]struct {
		Href string `json:"href"`
	} `json:"_links"`
	Embedded struct {
		Subscriptions []subJSON `json:"subscriptions"`
	} `json:"_embedded"`
}

const devEndpoint = "http://127.0.0.1:9/hook"

// newSub returns a valid create body with title.
func newSub(title string) map[string]any {
	return map[string]any{"title": title, "endpoint": devEndpoint, "events": []string{"entityCreated", "entityUpdated"}}
}

// with returns a copy of body with k set to v, or removed when v is remove.
func with(body map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range body {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == remove {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// remove marks a member to drop in with.
var remove = &struct{}{}

// checkResource checks the shape of a subscription resource.
func checkResource(t *testing.T, tn tenant, s subJSON) {
	t.Helper()
	if _, err := uuid.Parse(s.ID); err != nil {
		t.Errorf("got id %q, want a UUID", s.ID)
	}
	if s.CustomerID != tn.Customer.String() {
		t.Errorf("got customerId %s, want %s", s.CustomerID, tn.Customer)
	}
	for name, v := range map[string]string{"createdAt": s.CreatedAt, "updatedAt": s.UpdatedAt} {
		ts, err := time.Parse(time.RFC3339, v)
		if err != nil || !strings.HasSuffix(v, "Z") || ts.Location() != time.UTC {
			t.Errorf("got %s %q, want RFC 3339 UTC", name, v)
		}
	}
	self := tn.path("/webhooks/subscriptions/" + s.ID)
	if got := s.Links["self"].Href; got != self {
		t.Errorf("got self link %q, want the path %q", got, self)
	}
	if got := s.Links["events"].Href; got != self+"/events" {
		t.Errorf("got events link %q, want the path %q", got, self+"/events")
	}
	if s.Events == nil {
		t.Error("got events null, want a list")
	}
}

func TestSubscriptionsCRUD(t *testing.T) {
	h := startHookd(t, "")
	tn := h.newTenant()
	coll := tn.path("/webhooks/subscriptions")

	// Create: 201, Location, the resource.
	filter := map[string]any{"type": "object", "required": []string{"entityCreated"}}
	resp, data := h.call(http.MethodPost, coll, tn.Token, with(newSub("first"), "filter", filter))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: got %d, want 201; body %s", resp.StatusCode, data)
	}
	var s subJSON
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	checkResource(t, tn, s)
	if got := resp.Header.Get("Location"); got != coll+"/"+s.ID {
		t.Errorf("got Location %q, want %q", got, coll+"/"+s.ID)
	}
	if !s.Enabled || s.Title != "first" || s.Endpoint != devEndpoint || strings.Join(s.Events, ",") != "entityCreated,entityUpdated" {
		t.Errorf("got %+v, want the posted values, enabled by default", s)
	}
	if string(s.Filter) != `{"required":["entityCreated"],"type":"object"}` {
		t.Errorf("got filter %s, want the posted schema", s.Filter)
	}
	if s.CreatedAt != s.UpdatedAt {
		t.Errorf("got createdAt %s and updatedAt %s, want them equal at creation", s.CreatedAt, s.UpdatedAt)
	}
	var got subJSON
	h.mustCall(http.StatusOK, http.MethodGet, coll+"/"+s.ID, tn.Token, nil, &got)
	if got.ID != s.ID || got.Title != s.Title || string(got.Filter) != string(s.Filter) {
		t.Errorf("GET: got %+v, want %+v", got, s)
	}

	t.Run("created disabled, no events", func(t *testing.T) {
		var d subJSON
		h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, with(newSub("quiet"), "enabled", false, "events", []string{}), &d)
		if d.Enabled || d.Events == nil || len(d.Events) != 0 {
			t.Errorf("got enabled %v events %v, want false and []", d.Enabled, d.Events)
		}
		var raw map[string]any
		h.mustCall(http.StatusOK, http.MethodGet, coll+"/"+d.ID, tn.Token, nil, &raw)
		if _, ok := raw["filter"]; ok {
			t.Errorf("got filter %v without one set, want no filter member", raw["filter"])
		}
	})

	t.Run("text as written", func(t *testing.T) {
		body := `{"title":"a <b> & \"c\"","endpoint":"` + devEndpoint + `","events":[],"filter":{"pattern":"^<"}}`
		data := h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, body, nil)
		if !strings.Contains(string(data), `"title":"a <b> & \"c\""`) || !strings.Contains(string(data), `"pattern":"^<"`) {
			t.Errorf("got %s, want the title and filter without HTML escapes", data)
		}
	})

	t.Run("duplicate title 409", func(t *testing.T) {
		resp, data := h.call(http.MethodPost, coll, tn.Token, newSub("first"))
		p := readProblem(t, resp, data, http.StatusConflict)
		if !strings.Contains(p.Details, "first") {
			t.Errorf("got details %q, want the title named", p.Details)
		}
	})

	t.Run("get unknown", func(t *testing.T) {
		for _, id := range []string{uuid.NewString(), "not-a-uuid", "123", strings.ToUpper(uuid.NewString())} {
			resp, data := h.call(http.MethodGet, coll+"/"+id, tn.Token, nil)
			if p := readProblem(t, resp, data, http.StatusNotFound); p.Type != "/not-found" {
				t.Errorf("GET %s: got type %s, want /not-found", id, p.Type)
			}
		}
	})

	t.Run("PUT is 405", func(t *testing.T) {
		resp, data := h.call(http.MethodPut, coll+"/"+s.ID, tn.Token, newSub("first"))
		readProblem(t, resp, data, http.StatusMethodNotAllowed)
		if got := resp.Header.Get("Allow"); got != "GET, HEAD, PATCH, DELETE" {
			t.Errorf("got Allow %q, want GET, HEAD, PATCH, DELETE", got)
		}
		resp, data = h.call(http.MethodPut, coll, tn.Token, newSub("first"))
		readProblem(t, resp, data, http.StatusMethodNotAllowed)
		if got := resp.Header.Get("Allow"); got != "GET, HEAD, POST" {
			t.Errorf("got Allow %q, want GET, HEAD, POST", got)
		}
	})

	t.Run("HEAD is GET without a body", func(t *testing.T) {
		get, getData := h.call(http.MethodGet, coll+"/"+s.ID, tn.Token, nil)
		head, headData := h.call(http.MethodHead, coll+"/"+s.ID, tn.Token, nil)
		if head.StatusCode != http.StatusOK || len(headData) != 0 || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") || len(getData) == 0 {
			t.Errorf("HEAD: got %d, %d body bytes, Content-Type %q; want 200, no body, GET's %q", head.StatusCode, len(headData), head.Header.Get("Content-Type"), get.Header.Get("Content-Type"))
		}
		if head, _ := h.call(http.MethodHead, coll+"/"+s.ID, "", nil); head.StatusCode != http.StatusUnauthorized {
			t.Errorf("HEAD without a token: got %d, want 401", head.StatusCode)
		}
		if head, _ := h.call(http.MethodHead, "/healthz", "", nil); head.StatusCode != http.StatusOK {
			t.Errorf("HEAD /healthz: got %d, want 200", head.StatusCode)
		}
	})

	t.Run("patch", func(t *testing.T) {
		var p subJSON
		h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, with(newSub("patchme"), "filter", filter), &p)
		for _, ct := range []string{"application/merge-patch+json", "application/json", "application/merge-patch+json; charset=utf-8"} {
			resp, data := h.call(http.MethodPatch, coll+"/"+p.ID, tn.Token, `{"enabled": false}`, "Content-Type", ct)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("PATCH as %s: got %d, want 200; body %s", ct, resp.StatusCode, data)
			}
			var after subJSON
			_ = json.Unmarshal(data, &after)
			if after.Enabled || after.Title != "patchme" || after.Endpoint != devEndpoint || len(after.Events) != 2 || string(after.Filter) != string(p.Filter) {
				t.Errorf("PATCH as %s: got %+v, want only enabled changed", ct, after)
			}
			if after.CreatedAt != p.CreatedAt || after.UpdatedAt < p.UpdatedAt {
				t.Errorf("got createdAt %s updatedAt %s, want createdAt kept and updatedAt not before %s", after.CreatedAt, after.UpdatedAt, p.UpdatedAt)
			}
			checkResource(t, tn, after)
		}
		// Other media types are refused.
		resp, data := h.call(http.MethodPatch, coll+"/"+p.ID, tn.Token, `{"enabled": true}`, "Content-Type", "text/plain")
		readProblem(t, resp, data, http.StatusUnsupportedMediaType)
		resp, data = h.call(http.MethodPatch, coll+"/"+p.ID, tn.Token, `{"enabled": true}`, "Content-Type", "application/json-patch+json")
		readProblem(t, resp, data, http.StatusUnsupportedMediaType)

		// "filter": null removes the filter; absent members stay.
		var raw map[string]any
		h.mustCall(http.StatusOK, http.MethodPatch, coll+"/"+p.ID, tn.Token, map[string]any{"filter": nil}, &raw)
		if _, ok := raw["filter"]; ok {
			t.Errorf("got filter %v after \"filter\": null, want it removed", raw["filter"])
		}
		h.mustCall(http.StatusOK, http.MethodGet, coll+"/"+p.ID, tn.Token, nil, &raw)
		if _, ok := raw["filter"]; ok || raw["title"] != "patchme" || raw["enabled"] != false {
			t.Errorf("got %v after re-reading, want no filter, title patchme, enabled false", raw)
		}

		// Renaming frees the old title and takes the new one.
		h.mustCall(http.StatusOK, http.MethodPatch, coll+"/"+p.ID, tn.Token, map[string]any{"title": "renamed", "enabled": true, "events": []string{"entityDeleted"}}, &raw)
		if raw["title"] != "renamed" || raw["enabled"] != true {
			t.Errorf("got %v, want title renamed and enabled", raw)
		}
		h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, newSub("patchme"), nil)
		resp, data = h.call(http.MethodPost, coll, tn.Token, newSub("renamed"))
		readProblem(t, resp, data, http.StatusConflict)
		// Renaming onto another subscription's title is 409; one's own title is fine.
		resp, data = h.call(http.MethodPatch, coll+"/"+p.ID, tn.Token, map[string]any{"title": "first"})
		readProblem(t, resp, data, http.StatusConflict)
		h.mustCall(http.StatusOK, http.MethodPatch, coll+"/"+p.ID, tn.Token, map[string]any{"title": "renamed"}, nil)

		// Invalid patches are 400 and change nothing.
		for _, body := range []string{`{"title":"x"}`, `{"title":null}`, `{"events":["nope"]}`, `{"events":null}`, `{"enabled":"no"}`,
			`{"enabled":null}`, `{"endpoint":"ftp://x"}`, `{"endpoint":null}`, `{"filter":{"type":5}}`, `{"id":"` + uuid.NewString() + `"}`, `{"color":"red"}`} {
			resp, data := h.call(http.MethodPatch, coll+"/"+p.ID, tn.Token, body)
			if pr := readProblem(t, resp, data, http.StatusBadRequest); len(pr.Params) == 0 {
				t.Errorf("PATCH %s: got no invalid-body-params, want the member named", body)
			}
		}
		for _, body := range []string{`not json`, `[]`, `null`, `"x"`, ``, `{"a":1}{"b":2}`} {
			resp, data := h.call(http.MethodPatch, coll+"/"+p.ID, tn.Token, body)
			if pr := readProblem(t, resp, data, http.StatusBadRequest); pr.Type != "/invalid-request-body" {
				t.Errorf("PATCH %q: got type %s, want /invalid-request-body", body, pr.Type)
			}
		}
		var now subJSON
		h.mustCall(http.StatusOK, http.MethodGet, coll+"/"+p.ID, tn.Token, nil, &now)
		if now.Title != "renamed" || !now.Enabled || strings.Join(now.Events, ",") != "entityDeleted" || now.Endpoint != devEndpoint {
			t.Errorf("got %+v after refused patches, want it unchanged", now)
		}

		// Unknown ids.
		resp, data = h.call(http.MethodPatch, coll+"/"+uuid.NewString(), tn.Token, `{"enabled":true}`)
		readProblem(t, resp, data, http.StatusNotFound)
		resp, data = h.call(http.MethodPatch, coll+"/nope", tn.Token, `{"enabled":true}`)
		readProblem(t, resp, data, http.StatusNotFound)
	})

	t.Run("delete", func(t *testing.T) {
		var d subJSON
		h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, newSub("doomed"), &d)
		resp, data := h.call(http.MethodDelete, coll+"/"+d.ID, tn.Token, nil)
		if resp.StatusCode != http.StatusNoContent || len(data) != 0 {
			t.Fatalf("DELETE: got %d %q, want 204 and no body", resp.StatusCode, data)
		}
		resp, data = h.call(http.MethodGet, coll+"/"+d.ID, tn.Token, nil)
		readProblem(t, resp, data, http.StatusNotFound)
		resp, data = h.call(http.MethodDelete, coll+"/"+d.ID, tn.Token, nil)
		readProblem(t, resp, data, http.StatusNotFound)
		resp, data = h.call(http.MethodDelete, coll+"/not-a-uuid", tn.Token, nil)
		readProblem(t, resp, data, http.StatusNotFound)
		// The title is free again.
		h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, newSub("doomed"), nil)
	})
}

func TestSubscriptionValidation(t *testing.T) {
	h := startHookd(t, "")
	tn := h.newTenant()
	coll := tn.path("/webhooks/subscriptions")
	base := newSub("valid")
	long := func(n int) string { return strings.Repeat("é", n) } // characters, not bytes

	good := []struct {
		name string
		body map[string]any
	}{
		{"title of 2", with(base, "title", "ab")},
		{"title of 200", with(base, "title", long(200))},
		{"empty events", with(base, "title", "empty events", "events", []string{})},
		{"all events", with(base, "title", "all events", "events", []string{"entityCreated", "entityDeleted", "entityUpdated"})},
		{"enabled false", with(base, "title", "off", "enabled", false)},
		{"draft-07 filter", with(base, "title", "filtered", "filter", map[string]any{
			"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
			"properties": map[string]any{"entityUpdated": map[string]any{"type": "object", "required": []string{"attributes"}}},
			"if":         map[string]any{"required": []string{"entityCreated"}}, "then": true, "else": true,
		})},
		{"dev allows http loopback", with(base, "title", "loopback", "endpoint", "http://localhost:8081/cb")},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, tc.body, nil)
		})
	}

	bad := []struct {
		name  string
		body  any
		param string
	}{
		{"title of 1", with(base, "title", "a"), "title"},
		{"title of 201", with(base, "title", long(201)), "title"},
		{"title blank", with(base, "title", "   "), "title"},
		{"title not a string", with(base, "title", 42), "title"},
		{"title null", with(base, "title", nil), "title"},
		{"title missing", with(base, "title", remove), "title"},
		{"events unknown", with(base, "events", []string{"entityCreated", "entityMoved"}), "events"},
		{"events duplicate", with(base, "events", []string{"entityCreated", "entityCreated"}), "events"},
		{"events not a list", with(base, "events", "entityCreated"), "events"},
		{"events of numbers", with(base, "events", []int{1}), "events"},
		{"events null", with(base, "events", nil), "events"},
		{"events missing", with(base, "events", remove), "events"},
		{"enabled a string", with(base, "enabled", "true"), "enabled"},
		{"enabled a number", with(base, "enabled", 1), "enabled"},
		{"enabled null", with(base, "enabled", nil), "enabled"},
		{"endpoint missing", with(base, "endpoint", remove), "endpoint"},
		{"endpoint not a string", with(base, "endpoint", 5), "endpoint"},
		{"endpoint empty", with(base, "endpoint", ""), "endpoint"},
		{"endpoint relative", with(base, "endpoint", "/hook"), "endpoint"},
		{"endpoint ftp", with(base, "endpoint", "ftp://127.0.0.1/hook"), "endpoint"},
		{"endpoint user info", with(base, "endpoint", "http://user:pw@127.0.0.1/hook"), "endpoint"},
		{"endpoint fragment", with(base, "endpoint", "http://127.0.0.1/hook#x"), "endpoint"},
		{"endpoint too long", with(base, "endpoint", "http://127.0.0.1/"+strings.Repeat("a", 2100)), "endpoint"},
		{"filter unknown keyword", with(base, "filter", map[string]any{"type": "object", "frobnicate": true}), "filter"},
		{"filter invalid schema", with(base, "filter", map[string]any{"type": 5}), "filter"},
		{"filter bad pattern", with(base, "filter", map[string]any{"pattern": "("}), "filter"},
		{"filter later draft", with(base, "filter", map[string]any{"$schema": "https://json-schema.org/draft/2020-12/schema"}), "filter"},
		{"filter remote ref", with(base, "filter", map[string]any{"$ref": "http://127.0.0.1:1/schema.json"}), "filter"},
		{"filter a string", with(base, "filter", "type: object"), "filter"},
		{"filter a list", with(base, "filter", []any{}), "filter"},
		{"filter a number", with(base, "filter", 5), "filter"},
		{"unknown member", with(base, "colour", "red"), "colour"},
		{"read-only member", with(base, "id", uuid.NewString()), "id"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := h.call(http.MethodPost, coll, tn.Token, tc.body)
			p := readProblem(t, resp, data, http.StatusBadRequest)
			if p.Type != "/invalid-body-params" {
				t.Errorf("got type %s, want /invalid-body-params", p.Type)
			}
			found := false
			for _, bp := range p.Params {
				found = found || (bp.Name == tc.param && bp.Reason != "")
			}
			if !found {
				t.Errorf("got invalid-body-params %+v, want %s with a reason", p.Params, tc.param)
			}
		})
	}

	t.Run("every problem at once", func(t *testing.T) {
		resp, data := h.call(http.MethodPost, coll, tn.Token, map[string]any{"title": 1, "events": "x", "endpoint": "ftp://x", "enabled": "y"})
		p := readProblem(t, resp, data, http.StatusBadRequest)
		if len(p.Params) != 4 {
			t.Errorf("got %d invalid-body-params %+v, want 4", len(p.Params), p.Params)
		}
	})

	bodies := []struct{ name, body string }{
		{"not JSON", "title=x"},
		{"truncated", `{"title":`},
		{"array", `[{"title":"ab"}]`},
		{"null", `null`},
		{"string", `"x"`},
		{"empty", ``},
		{"two objects", `{"title":"ab"} {"title":"cd"}`},
	}
	for _, tc := range bodies {
		t.Run("body "+tc.name, func(t *testing.T) {
			resp, data := h.call(http.MethodPost, coll, tn.Token, tc.body)
			if p := readProblem(t, resp, data, http.StatusBadRequest); p.Type != "/invalid-request-body" {
				t.Errorf("got type %s, want /invalid-request-body", p.Type)
			}
		})
	}
	t.Run("other media type", func(t *testing.T) {
		resp, data := h.call(http.MethodPost, coll, tn.Token, with(base, "title", "media"), "Content-Type", "text/plain")
		readProblem(t, resp, data, http.StatusUnsupportedMediaType)
	})
	t.Run("body too large", func(t *testing.T) {
		big := `{"title":"` + strings.Repeat("a", 2<<20) + `"}`
		resp, data := h.call(http.MethodPost, coll, tn.Token, big)
		readProblem(t, resp, data, http.StatusRequestEntityTooLarge)
	})
	t.Run("nothing stored by refused calls", func(t *testing.T) {
		var l subList
		h.mustCall(http.StatusOK, http.MethodGet, coll, tn.Token, nil, &l)
		if l.Total != len(good) {
			t.Errorf("got total %d, want the %d good ones", l.Total, len(good))
		}
	})
}

func TestSubscriptionPaging(t *testing.T) {
	h := startHookd(t, "")
	tn := h.newTenant()
	coll := tn.path("/webhooks/subscriptions")

	var empty subList
	h.mustCall(http.StatusOK, http.MethodGet, coll, tn.Token, nil, &empty)
	if empty.Total != 0 || empty.Embedded.Subscriptions == nil || len(empty.Embedded.Subscriptions) != 0 {
		t.Errorf("empty list: got %+v, want total 0 and an empty list", empty)
	}
	h.mustCall(http.StatusOK, http.MethodGet, coll+"?page=3", tn.Token, nil, &empty)
	if empty.Total != 0 || len(empty.Embedded.Subscriptions) != 0 {
		t.Errorf("page 3 of nothing: got %+v, want an empty page", empty)
	}

	var titles []string
	for i := 0; i < 30; i++ {
		title := fmt.Sprintf("sub %02d", 29-i) // titles sort against creation order
		titles = append(titles, title)
		h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, newSub(title), nil)
	}
	check := func(query string, wantTitles []string, links map[string]string) {
		t.Helper()
		var l subList
		h.mustCall(http.StatusOK, http.MethodGet, coll+query, tn.Token, nil, &l)
		if l.Total != 30 {
			t.Errorf("%s: got total %d, want 30", query, l.Total)
		}
		var got []string
		for _, s := range l.Embedded.Subscriptions {
			checkResource(t, tn, s)
			got = append(got, s.Title)
		}
		if strings.Join(got, ",") != strings.Join(wantTitles, ",") {
			t.Errorf("%s: got titles %v, want %v (oldest first)", query, got, wantTitles)
		}
		for _, rel := range []string{"self", "next", "prev"} {
			want, wanted := links[rel]
			gotLink, present := l.Links[rel]
			if wanted != present || gotLink.Href != want {
				t.Errorf("%s: got %s link %q (present %v), want %q (present %v)", query, rel, gotLink.Href, present, want, wanted)
			}
		}
	}
	check("", titles, map[string]string{"self": coll})
	check("?page=1", titles[:25], map[string]string{"self": coll + "?page=1", "next": coll + "?page=2"})
	check("?page=2", titles[25:], map[string]string{"self": coll + "?page=2", "prev": coll + "?page=1"})
	check("?page=99", titles[25:], map[string]string{"self": coll + "?page=2", "prev": coll + "?page=1"})

	for _, q := range []string{"?page=0", "?page=-1", "?page=x", "?page=1.5"} {
		resp, data := h.call(http.MethodGet, coll+q, tn.Token, nil)
		readProblem(t, resp, data, http.StatusBadRequest)
	}
}

// TestSubscriptionsPublicEndpoints runs hookd without --dev: listener
// endpoints must be https URLs of public addresses.
func TestSubscriptionsPublicEndpoints(t *testing.T) {
	h := startHookdNoDev(t, "", "--subscription-limit", "3")
	tn := h.newTenant()
	coll := tn.path("/webhooks/subscriptions")
	base := map[string]any{"title": "public", "events": []string{"entityCreated"}}

	refused := []string{
		"http://93.184.215.14/hook",           // http
		"https://user@93.184.215.14/hook",     // user info
		"https://user:pw@93.184.215.14/hook",  // user info
		"https://127.0.0.1/hook",              // loopback
		"https://127.8.9.10:8443/hook",        // loopback
		"https://[::1]/hook",                  // loopback
		"https://localhost/hook",              // resolves to loopback
		"https://0.0.0.0/hook",                // unspecified
		"https://10.1.2.3/hook",               // private
		"https://172.16.0.1/hook",             // private
		"https://192.168.1.1/hook",            // private
		"https://169.254.10.10/hook",          // link-local
		"https://169.254.169.254/latest/meta", // metadata
		"https://[fd00:ec2::254]/hook",        // metadata (IPv6), unique-local
		"https://100.64.0.1/hook",             // CGNAT
		"https://100.127.255.254/hook",        // CGNAT
		"https://224.0.0.1/hook",              // multicast
		"https://[ff02::1]/hook",              // multicast
		"https://[fc00::1]/hook",              // unique-local
		"https://[fe80::1]/hook",              // link-local
		"https://[::ffff:127.0.0.1]/hook",     // IPv4-mapped loopback
		"https://[::ffff:10.0.0.1]/hook",      // IPv4-mapped private
		"https://2130706433/hook",             // 127.0.0.1 as a number
		"ws://93.184.215.14/hook",             // other scheme
	}
	for _, ep := range refused {
		t.Run(ep, func(t *testing.T) {
			resp, data := h.call(http.MethodPost, coll, tn.Token, with(base, "endpoint", ep))
			p := readProblem(t, resp, data, http.StatusBadRequest)
			if len(p.Params) != 1 || p.Params[0].Name != "endpoint" {
				t.Errorf("got invalid-body-params %+v, want endpoint", p.Params)
			}
		})
	}

	t.Run("public https accepted", func(t *testing.T) {
		for i, ep := range []string{"https://93.184.215.14/hook", "https://[2606:4700:4700::1111]:8443/a?b=c"} {
			h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, with(base, "title", fmt.Sprintf("public %d", i), "endpoint", ep), nil)
		}
	})
	t.Run("patch to a private endpoint refused", func(t *testing.T) {
		var l subList
		h.mustCall(http.StatusOK, http.MethodGet, coll, tn.Token, nil, &l)
		resp, data := h.call(http.MethodPatch, coll+"/"+l.Embedded.Subscriptions[0].ID, tn.Token, map[string]any{"endpoint": "https://10.0.0.1/x"})
		readProblem(t, resp, data, http.StatusBadRequest)
	})

	t.Run("subscription limit", func(t *testing.T) {
		h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, with(base, "title", "third", "endpoint", "https://93.184.215.14/3"), nil)
		resp, data := h.call(http.MethodPost, coll, tn.Token, with(base, "title", "fourth", "endpoint", "https://93.184.215.14/4"))
		p := readProblem(t, resp, data, http.StatusConflict)
		if !strings.Contains(p.Details, "maximum") {
			t.Errorf("got details %q, want the limit explained", p.Details)
		}
		// The limit is per customer: another customer still has room.
		other := h.newTenant()
		h.mustCall(http.StatusCreated, http.MethodPost, other.path("/webhooks/subscriptions"), other.Token, with(base, "title", "fourth", "endpoint", "https://93.184.215.14/4"), nil)
		// A deletion makes room.
		var l subList
		h.mustCall(http.StatusOK, http.MethodGet, coll, tn.Token, nil, &l)
		h.mustCall(http.StatusNoContent, http.MethodDelete, coll+"/"+l.Embedded.Subscriptions[0].ID, tn.Token, nil, nil)
		h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, with(base, "title", "fourth", "endpoint", "https://93.184.215.14/4"), nil)
	})
}

// TestRestartKeepsEverything stops hookd and starts it again on the same
// data directory: clients, tokens, keys and subscriptions are all there.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	h := startHookd(t, dir)
	tn := h.newTenant()
	coll := tn.path("/webhooks/subscriptions")
	var s subJSON
	h.mustCall(http.StatusCreated, http.MethodPost, coll, tn.Token, with(newSub("kept"), "filter", map[string]any{"type": "object"}), &s)
	h.mustCall(http.StatusOK, http.MethodPatch, coll+"/"+s.ID, tn.Token, map[string]any{"enabled": false}, &s)
	jwks := kids(fetchJWKS(t, h, tn.Customer))
	adminToken := h.AdminToken
	if err := h.Stop(); err != nil {
		t.Fatalf("stop: got %v, want nil", err)
	}

	h2 := startHookd(t, dir)
	if h2.AdminToken != adminToken {
		t.Errorf("got admin token changed at restart, want it reused")
	}
	if strings.Contains(h2.Stdout.String(), "demo customer") {
		t.Error("got a second demo customer at restart, want it only on an empty store")
	}
	var got subJSON
	h2.mustCall(http.StatusOK, http.MethodGet, coll+"/"+s.ID, tn.Token, nil, &got)
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(s)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("after restart: got %s, want %s", gotJSON, wantJSON)
	}
	if after := kids(fetchJWKS(t, h2, tn.Customer)); strings.Join(after, ",") != strings.Join(jwks, ",") {
		t.Errorf("got kids %v after restart, want %v", after, jwks)
	}
	h2.token(tn.Customer, tn.ClientID, tn.Secret)
	resp, data := h2.call(http.MethodPost, coll, tn.Token, newSub("kept"))
	readProblem(t, resp, data, http.StatusConflict)
}
