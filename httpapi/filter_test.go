package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hookd/store/bolt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"hookd/store"
)

// addCustomer adds a customer (with one client) to db.
func addCustomer(t *testing.T, db *bolt.DB) uuid.UUID {
	t.Helper()
	cid := uuid.New()
	noKeys := func() (store.KeySet, error) { return store.KeySet{}, nil }
	if _, err := db.CreateClient(cid, uuid.New(), store.HashSecret("secret"), noKeys); err != nil {
		t.Fatal(err)
	}
	return cid
}

// testEvent is an intake event of type entityCreated for user sub.
func testEvent(sub string) string {
	return `{"type":"entityCreated","event":{"captureApplicationId":"app","captureClientId":"cl","entityType":"user","globalSub":"g","sub":"` + sub + `"}}`
}

// subscriptionBody is a creation body with filter (omitted when empty).
func subscriptionBody(title, filter string) string {
	b := `{"title":"` + title + `","endpoint":"https://example.com/hook","events":["entityCreated"]`
	if filter != "" {
		b += `,"filter":` + filter
	}
	return b + "}"
}

// nested returns a filter nesting {"items": ...} depth levels deep.
func nested(depth int) string {
	return strings.Repeat(`{"items":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1)
}

// refDoubling returns a filter of n definitions that each refer twice to
// the next: 2^n subschemas once every $ref is followed.
func refDoubling(n int) string {
	var b strings.Builder
	b.WriteString(`{"$ref":"#/definitions/d0","definitions":{`)
	for i := range n {
		fmt.Fprintf(&b, `"d%d":{"allOf":[{"$ref":"#/definitions/d%d"},{"$ref":"#/definitions/d%d"}]},`, i, i+1, i+1)
	}
	fmt.Fprintf(&b, `"d%d":{"type":"object"}}}`, n)
	return b.String()
}

// TestFilterLimits: a filter beyond the depth, size or cost limits is 400
// naming filter, refused before compiling, and nothing is stored; one at
// the limits is accepted.
func TestFilterLimits(t *testing.T) {
	db, cust, token := testTenant(t)
	s, url := testAPI(t, db, Options{})
	var compiled atomic.Int32
	s.filters.compile = func(raw json.RawMessage) (*jsonschema.Schema, error) {
		compiled.Add(1)
		return compileFilter(raw)
	}
	coll := url + "/" + cust.String() + "/webhooks/subscriptions"

	bad := []struct{ name, filter, reason string }{
		{"3000 levels deep", nested(3000), "at most"},
		{"33 levels deep", nested(MaxFilterDepth + 1), fmt.Sprintf("at most %d levels", MaxFilterDepth)},
		{"deep arrays", `{"allOf":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, fmt.Sprintf("at most %d levels", MaxFilterDepth)},
		{"3000 levels within the size", `{"enum":` + strings.Repeat("[", 3000) + strings.Repeat("]", 3000) + `}`, fmt.Sprintf("at most %d levels", MaxFilterDepth)},
		{"too large", `{"enum":["` + strings.Repeat("a", MaxFilterSize) + `"]}`, fmt.Sprintf("at most %d bytes", MaxFilterSize)},
		{"refs that double", refDoubling(30), fmt.Sprintf("at most %d subschemas", MaxFilterSchemas)},
		{"too wide", `{"anyOf":[` + strings.Repeat(`{},`, MaxFilterSchemas) + `{}]}`, fmt.Sprintf("at most %d subschemas", MaxFilterSchemas)},
		{"recursive ref", `{"$ref":"#/definitions/n","definitions":{"n":{"items":{"$ref":"#/definitions/n"}}}}`, "refer to itself"},
		{"costly patterns", `{"allOf":[` + strings.Repeat(`{"pattern":"(a{100}){10}"},`, 20) + `{}]}`, "instructions"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			before := compiled.Load()
			res := callAPI(t, http.MethodPost, coll, token, "application/json", strings.NewReader(subscriptionBody("limits", tc.filter)))
			p := res.Problem
			if res.Status != http.StatusBadRequest || p.Type != "/invalid-body-params" || len(p.Params) != 1 || p.Params[0].Name != "filter" || !strings.Contains(p.Params[0].Reason, tc.reason) {
				t.Fatalf("got %d %s, want 400 /invalid-body-params naming filter with %q", res.Status, res.Body, tc.reason)
			}
			if got := compiled.Load() - before; got != 1 {
				t.Errorf("got %d filter checks, want 1", got)
			}
			if subs, _ := db.Subscriptions(cust); len(subs) != 0 {
				t.Errorf("got %d subscriptions stored, want none", len(subs))
			}
		})
	}

	t.Run("at the limits", func(t *testing.T) {
		for i, f := range []string{nested(MaxFilterDepth), refDoubling(6), `{"pattern":"(a{100}){10}"}`} {
			res := callAPI(t, http.MethodPost, coll, token, "application/json", strings.NewReader(subscriptionBody(fmt.Sprintf("at limit %d", i), f)))
			if res.Status != http.StatusCreated {
				t.Errorf("filter %d: got %d %s, want 201", i, res.Status, res.Body)
			}
		}
	})
}

// TestJSONDepth: the depth check counts objects and arrays, not brackets
// inside strings.
func TestJSONDepth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{`5`, 0},
		{`{}`, 1},
		{`{"a":[{"b":"[[[{{{"}]}`, 3},
		{`{"a":"\"[[["}`, 1},
		{nested(40), 40},
	} {
		if got := jsonDepth([]byte(tc.in)); got != tc.want {
			t.Errorf("jsonDepth(%.40s): got %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestFilterCompiledWhenStored: a filter is compiled when it is created or
// patched, and the intake uses that compiled filter without compiling it
// again; deleting the subscription drops it.
func TestFilterCompiledWhenStored(t *testing.T) {
	db, cust, token := testTenant(t)
	s, url := testAPI(t, db, Options{})
	var compiled atomic.Int32
	s.filters.compile = func(raw json.RawMessage) (*jsonschema.Schema, error) {
		compiled.Add(1)
		return compileFilter(raw)
	}
	coll := url + "/" + cust.String() + "/webhooks/subscriptions"
	intake := url + "/" + cust.String() + "/webhooks/events"
	onlyUser := func(sub string) string {
		return `{"properties":{"entityCreated":{"properties":{"sub":{"const":"` + sub + `"}}}}}`
	}
	res := callAPI(t, http.MethodPost, coll, token, "application/json", strings.NewReader(subscriptionBody("filtered", onlyUser("u-1"))))
	if res.Status != http.StatusCreated {
		t.Fatalf("create: got %d %s", res.Status, res.Body)
	}
	var sub subscriptionJSON
	if err := json.Unmarshal(res.Body, &sub); err != nil {
		t.Fatal(err)
	}
	recorded := func(user string) int {
		t.Helper()
		res := callAPI(t, http.MethodPost, intake, testAdminToken, mediaJSON, strings.NewReader(testEvent(user)))
		var out intakeResponse
		if res.Status != http.StatusAccepted || json.Unmarshal(res.Body, &out) != nil {
			t.Fatalf("intake: got %d %s, want 202", res.Status, res.Body)
		}
		return out.Recorded
	}
	if got := recorded("u-1"); got != 1 {
		t.Errorf("event the filter accepts: got %d recorded, want 1", got)
	}
	if got := recorded("u-2"); got != 0 {
		t.Errorf("event the filter refuses: got %d recorded, want 0", got)
	}
	if got := compiled.Load(); got != 1 {
		t.Errorf("after create and two intakes: got %d compiles, want 1 (at create)", got)
	}

	res = callAPI(t, http.MethodPatch, coll+"/"+sub.ID.String(), token, "application/merge-patch+json", strings.NewReader(`{"filter":`+onlyUser("u-2")+`}`))
	if res.Status != http.StatusOK {
		t.Fatalf("patch: got %d %s", res.Status, res.Body)
	}
	if got := recorded("u-2"); got != 1 {
		t.Errorf("event the patched filter accepts: got %d recorded, want 1", got)
	}
	res = callAPI(t, http.MethodPatch, coll+"/"+sub.ID.String(), token, "application/merge-patch+json", strings.NewReader(`{"title":"renamed"}`))
	if res.Status != http.StatusOK {
		t.Fatalf("patch title: got %d %s", res.Status, res.Body)
	}
	if got := recorded("u-1"); got != 0 {
		t.Errorf("event the patched filter refuses: got %d recorded, want 0", got)
	}
	if got := compiled.Load(); got != 2 {
		t.Errorf("after a filter patch, a title patch and intakes: got %d compiles, want 2 (create and filter patch)", got)
	}

	if res := callAPI(t, http.MethodDelete, coll+"/"+sub.ID.String(), token, "", nil); res.Status != http.StatusNoContent {
		t.Fatalf("delete: got %d", res.Status)
	}
	s.filters.mu.Lock()
	_, kept := s.filters.m[sub.ID]
	s.filters.mu.Unlock()
	if kept {
		t.Error("got the deleted subscription's filter still cached, want it dropped")
	}
}

// TestIntakeNotBlockedByCompile: while one customer's filter compiles (a
// compile that blocks until released), another customer's intake, whose
// filter must be compiled too, completes; the first completes once its
// compile ends.
func TestIntakeNotBlockedByCompile(t *testing.T) {
	db, custA, _ := testTenant(t)
	custB := addCustomer(t, db)
	s, url := testAPI(t, db, Options{})
	filterA := `{"required":["entityCreated"]}`
	filterB := `{"properties":{"entityCreated":{"required":["sub"]}}}`
	now := time.Now().UTC()
	for _, c := range []struct {
		cid    uuid.UUID
		filter string
	}{{custA, filterA}, {custB, filterB}} {
		// Stored behind the API's back, as before a restart: not compiled yet.
		sub := store.Subscription{ID: uuid.New(), CustomerID: c.cid, Title: "filtered", Endpoint: "https://example.com/hook",
			Events: []string{"entityCreated"}, Enabled: true, Filter: []byte(c.filter), CreatedAt: now, UpdatedAt: now}
		if err := db.CreateSubscription(sub, 0); err != nil {
			t.Fatal(err)
		}
	}
	compiling, release := make(chan struct{}), make(chan struct{})
	s.filters.compile = func(raw json.RawMessage) (*jsonschema.Schema, error) {
		if bytes.Equal(raw, []byte(filterA)) {
			close(compiling)
			<-release
		}
		return compileFilter(raw)
	}
	post := func(cid uuid.UUID) apiResult {
		return callAPI(t, http.MethodPost, url+"/"+cid.String()+"/webhooks/events", testAdminToken, mediaJSON, strings.NewReader(testEvent("u-1")))
	}
	doneA := make(chan apiResult, 1)
	go func() { doneA <- post(custA) }()
	<-compiling

	doneB := make(chan apiResult, 1)
	go func() { doneB <- post(custB) }()
	var resB apiResult
	select {
	case resB = <-doneB:
	case <-time.After(30 * time.Second): // only a guard: B answers at once unless it waits for A
		close(release)
		t.Fatal("customer B's intake waited for customer A's filter to compile")
	}
	var out intakeResponse
	if resB.Status != http.StatusAccepted || json.Unmarshal(resB.Body, &out) != nil || out.Recorded != 1 {
		t.Fatalf("customer B while A's filter compiles: got %d %s, want 202 with 1 recorded", resB.Status, resB.Body)
	}
	select {
	case res := <-doneA:
		t.Fatalf("customer A answered %d before its filter compiled", res.Status)
	default:
	}
	close(release)
	resA := <-doneA
	if resA.Status != http.StatusAccepted || json.Unmarshal(resA.Body, &out) != nil || out.Recorded != 1 {
		t.Fatalf("customer A: got %d %s, want 202 with 1 recorded", resA.Status, resA.Body)
	}
}
