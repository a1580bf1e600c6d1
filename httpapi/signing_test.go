package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"hookd/store"
)

// TestSubscriptionSigning: "signing" is optional on create (RS256), set on
// create and patch, always shown on read, kept by a patch that does not
// name it, and a bad value is a 400 naming the member that changes nothing.
func TestSubscriptionSigning(t *testing.T) {
	db, cust, token := testTenant(t)
	_, url := testAPI(t, db, Options{})
	subs := url + "/" + cust.String() + "/webhooks/subscriptions"
	type subJSON struct {
		ID      uuid.UUID
		Signing struct{ Alg string }
	}
	decode := func(res apiResult) subJSON {
		t.Helper()
		var s subJSON
		if err := json.Unmarshal(res.Body, &s); err != nil {
			t.Fatalf("decode %s: %v", res.Body, err)
		}
		return s
	}
	create := func(title, signing string) apiResult {
		body := `{"title":"` + title + `","endpoint":"https://example.com/hook","events":["entityCreated"]`
		if signing != "" {
			body += `,"signing":` + signing
		}
		return callAPI(t, http.MethodPost, subs, token, "application/json", strings.NewReader(body+"}"))
	}
	stored := func(id uuid.UUID) store.Subscription {
		t.Helper()
		s, err := db.Subscription(cust, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Without signing: RS256, shown on read; nothing stored (the default).
	res := create("default alg", "")
	if res.Status != http.StatusCreated {
		t.Fatalf("create without signing: got %d %s, want 201", res.Status, res.Body)
	}
	def := decode(res)
	if def.Signing.Alg != store.AlgRS256 {
		t.Errorf("create without signing: got alg %q, want RS256", def.Signing.Alg)
	}
	if got := decode(callAPI(t, http.MethodGet, subs+"/"+def.ID.String(), token, "", nil)); got.Signing.Alg != store.AlgRS256 {
		t.Errorf("read without signing: got alg %q, want RS256", got.Signing.Alg)
	}
	if got := stored(def.ID).Alg(); got != store.AlgRS256 {
		t.Errorf("stored alg: got %q, want RS256", got)
	}

	// Each algorithm on create.
	for _, alg := range store.SigningAlgs {
		res := create("alg "+alg, `{"alg":"`+alg+`"}`)
		if res.Status != http.StatusCreated {
			t.Fatalf("create with %s: got %d %s, want 201", alg, res.Status, res.Body)
		}
		s := decode(res)
		if s.Signing.Alg != alg {
			t.Errorf("create with %s: got alg %q", alg, s.Signing.Alg)
		}
		if got := decode(callAPI(t, http.MethodGet, subs+"/"+s.ID.String(), token, "", nil)); got.Signing.Alg != alg {
			t.Errorf("read of a %s subscription: got alg %q", alg, got.Signing.Alg)
		}
		if got := stored(s.ID).SigningAlg; got != alg {
			t.Errorf("stored alg: got %q, want %q", got, alg)
		}
	}

	// Patch: set, then kept by a patch without the member.
	one := subs + "/" + def.ID.String()
	patch := func(body string) apiResult {
		return callAPI(t, http.MethodPatch, one, token, "application/merge-patch+json", strings.NewReader(body))
	}
	if res := patch(`{"signing":{"alg":"EdDSA"}}`); res.Status != http.StatusOK || decode(res).Signing.Alg != store.AlgEdDSA {
		t.Fatalf("patch to EdDSA: got %d %s, want 200 with EdDSA", res.Status, res.Body)
	}
	if res := patch(`{"title":"renamed"}`); res.Status != http.StatusOK || decode(res).Signing.Alg != store.AlgEdDSA {
		t.Errorf("patch of the title: got %d %s, want 200 keeping EdDSA", res.Status, res.Body)
	}
	if got := stored(def.ID).SigningAlg; got != store.AlgEdDSA {
		t.Errorf("stored alg after patches: got %q, want EdDSA", got)
	}

	// Bad values.
	for _, tc := range []struct{ signing, name string }{
		{`{"alg":"HS256"}`, "signing.alg"},
		{`{"alg":"none"}`, "signing.alg"},
		{`{"alg":"es256"}`, "signing.alg"},
		{`{"alg":256}`, "signing.alg"},
		{`{"alg":null}`, "signing.alg"},
		{`{}`, "signing.alg"},
		{`{"alg":"ES256","crv":"P-256"}`, "signing.crv"},
		{`"ES256"`, "signing"},
		{`null`, "signing"},
		{`["ES256"]`, "signing"},
	} {
		for _, res := range []apiResult{patch(`{"signing":` + tc.signing + `}`), create("bad signing", tc.signing)} {
			p := res.Problem
			if res.Status != http.StatusBadRequest || p.Type != "/invalid-body-params" || len(p.Params) != 1 || p.Params[0].Name != tc.name {
				t.Errorf("signing %s: got %d %s, want 400 /invalid-body-params naming %s", tc.signing, res.Status, res.Body, tc.name)
			}
		}
	}
	if got := stored(def.ID).SigningAlg; got != store.AlgEdDSA {
		t.Errorf("stored alg after bad patches: got %q, want EdDSA unchanged", got)
	}
	all, err := db.Subscriptions(cust)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1+len(store.SigningAlgs) {
		t.Errorf("got %d subscriptions, want %d (no bad create stored)", len(all), 1+len(store.SigningAlgs))
	}
}
