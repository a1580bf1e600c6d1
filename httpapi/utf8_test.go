package httpapi

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestInvalidUTF8Path(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "": valid
	}{
		{`{"a":"ok","b":["x","y"],"c":{"d":"\u00e9 é"}}`, ""},
		{`{"title":"ab` + "\xff\xfe" + `"}`, "title"},
		{`{"a":1,"event":{"sub":"s","attributes":["email","x` + "\xc3" + `"]}}`, "event.attributes[1]"},
		{`{"event":{"ab` + "\xff" + `":"v"}}`, "event.ab\uFFFD"},
		{`{"event":{"x":[{"y":[1,{"z":"` + "\xed\xa0\x80" + `"}]}]}}`, "event.x[0].y[1].z"},
		{`{"k\"e,y:":{"q":"` + "\x80" + `"}}`, `k"e,y:.q`},
		{`{"a":"\ud800"}`, "a"},
		{`{"a":"\udc00\ud800"}`, "a"},
		{`{"a":"\ud83d\ude00 and \\ud800 is text"}`, ""},
		{`["` + "\xff" + `"]`, "[0]"},
	} {
		path, found := invalidUTF8([]byte(tc.in))
		if got := joinPath(path); found != (tc.want != "") || got != tc.want {
			t.Errorf("invalidUTF8(%q): got %q %v, want %q", tc.in, got, found, tc.want)
		}
		if textValid([]byte(tc.in)) != (tc.want == "") {
			t.Errorf("textValid(%q): got %v, want %v", tc.in, !(tc.want == ""), tc.want == "")
		}
	}
}

// TestInvalidUTF8Refused: invalid UTF-8 anywhere in a request body (names
// and values) is 400 naming the member (and line in NDJSON), and nothing is
// stored or changed.
func TestInvalidUTF8Refused(t *testing.T) {
	db, cust, token := testTenant(t)
	sub := intakeTarget(t, db, cust)
	_, url := testAPI(t, db, Options{})
	coll := url + "/" + cust.String() + "/webhooks/subscriptions"
	bad := "ab\xff\xfe"
	before, err := db.Subscriptions(cust)
	if err != nil {
		t.Fatal(err)
	}

	subscriptionBodies := []struct{ name, body, want string }{
		{"title", `{"title":"` + bad + `","endpoint":"https://example.com/hook","events":[]}`, "title"},
		{"endpoint", `{"title":"utf8","endpoint":"https://example.com/` + bad + `","events":[]}`, "endpoint"},
		{"events element", `{"title":"utf8","endpoint":"https://example.com/hook","events":["` + bad + `"]}`, "events"},
		{"inside filter", `{"title":"utf8","endpoint":"https://example.com/hook","events":[],"filter":{"properties":{"x":{"const":"` + bad + `"}}}}`, "filter"},
		{"member name", `{"title":"utf8","endpoint":"https://example.com/hook","events":[],"` + bad + `":1}`, "ab\uFFFD"},
		{"lone surrogate escape", `{"title":"a\udfffb","endpoint":"https://example.com/hook","events":[]}`, "title"},
	}
	for _, tc := range subscriptionBodies {
		t.Run("create "+tc.name, func(t *testing.T) {
			res := callAPI(t, http.MethodPost, coll, token, "application/json", strings.NewReader(tc.body))
			if res.Status != http.StatusBadRequest || res.Problem.Type != "/invalid-body-params" || strings.Join(res.Problem.names(), "|") != tc.want {
				t.Errorf("got %d %s, want 400 naming %q", res.Status, res.Body, tc.want)
			}
		})
		t.Run("patch "+tc.name, func(t *testing.T) {
			res := callAPI(t, http.MethodPatch, coll+"/"+sub.String(), token, "application/merge-patch+json", strings.NewReader(tc.body))
			if res.Status != http.StatusBadRequest || strings.Join(res.Problem.names(), "|") != tc.want {
				t.Errorf("got %d %s, want 400 naming %q", res.Status, res.Body, tc.want)
			}
		})
	}
	after, err := db.Subscriptions(cust)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("got subscriptions %+v after the refused calls, want them unchanged: %+v", after, before)
	}

	t.Run("export body", func(t *testing.T) {
		res := callAPI(t, http.MethodPost, coll+"/"+sub.String()+"/exports", token, "application/json", strings.NewReader(`{"encoding":"`+bad+`"}`))
		if res.Status != http.StatusBadRequest || strings.Join(res.Problem.names(), "|") != "encoding" {
			t.Errorf("got %d %s, want 400 naming encoding", res.Status, res.Body)
		}
	})

	intake := url + "/" + cust.String() + "/webhooks/events"
	good := testEvent("u-1")
	intakeBodies := []struct {
		name, mediaType, body string
		want                  []string
	}{
		{"event member", mediaJSON, strings.Replace(good, `"sub":"u-1"`, `"sub":"`+bad+`"`, 1), []string{"event.sub"}},
		{"extra event member", mediaJSON, strings.Replace(good, `"sub":"u-1"`, `"sub":"u-1","profile":{"names":["ok","`+bad+`"]}`, 1), []string{"event.profile.names[1]"}},
		{"event member name", mediaJSON, strings.Replace(good, `"sub":"u-1"`, `"sub":"u-1","`+bad+`":1`, 1), []string{"event.ab\uFFFD"}},
		{"type", mediaJSON, strings.Replace(good, `"entityCreated"`, `"`+bad+`"`, 1), []string{"type"}},
		{"NDJSON lines", mediaNDJSON, good + "\n\n" + strings.Replace(good, `"entityType":"user"`, `"entityType":"`+bad+`"`, 1) + "\n" + good + "\n" + strings.Replace(good, `"g"`, `"g\ud800"`, 1) + "\n",
			[]string{"line 3: event.entityType", "line 5: event.globalSub"}},
	}
	for _, tc := range intakeBodies {
		t.Run("intake "+tc.name, func(t *testing.T) {
			res := callAPI(t, http.MethodPost, intake, testAdminToken, tc.mediaType, strings.NewReader(tc.body))
			if res.Status != http.StatusBadRequest || res.Problem.Type != "/invalid-body-params" || strings.Join(res.Problem.names(), "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %d %s, want 400 naming %v", res.Status, res.Body, tc.want)
			}
		})
	}
	if n := storedEvents(t, db, cust, sub); n != 0 {
		t.Errorf("got %d events stored, want none", n)
	}
}
