package e2e

// End-to-end tests of SPEC section 2: the token endpoint, bearer rules,
// tenancy and the JWKS.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"hookd/delivery"
	"hookd/store"
)

// problemJSON is the body of an error answer (SPEC section 3).
type problemJSON struct {
	Type    string `json:"type"`
	Status  int    `json:"status"`
	Title   string `json:"title"`
	Details string `json:"details"`
	Params  []struct {
		Name   string `json:"name"`
		Reason string `json:"reason"`
	} `json:"invalid-body-params"`
}

// readProblem checks that an answer is problem JSON with status want and
// decodes it.
func readProblem(t *testing.T, resp *http.Response, data []byte, want int) problemJSON {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: got status %d, want %d; body: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want, data)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("got Content-Type %q, want application/problem+json", ct)
	}
	var p problemJSON
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("decode problem %s: %v", data, err)
	}
	if p.Status != want || p.Title == "" || !strings.HasPrefix(p.Type, "/") {
		t.Errorf("got problem %+v, want status %d, a title and a type path", p, want)
	}
	return p
}

// tokenRequest posts a token request; form is urlencoded unless multi.
func tokenRequest(t *testing.T, h *hookd, customer, user, pass string, form url.Values, multi bool) (*http.Response, []byte) {
	t.Helper()
	var body bytes.Buffer
	ct := "application/x-www-form-urlencoded"
	if multi {
		mw := multipart.NewWriter(&body)
		for k, vs := range form {
			for _, v := range vs {
				if err := mw.WriteField(k, v); err != nil {
					t.Fatal(err)
				}
			}
		}
		mw.Close()
		ct = mw.FormDataContentType()
	} else {
		body.WriteString(form.Encode())
	}
	req, err := http.NewRequest(http.MethodPost, h.URL+"/"+customer+"/login/token", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp, out.Bytes()
}

var goodForm = url.Values{"grant_type": {"client_credentials"}, "scope": {"*:webhooks/**"}}

func TestTokenEndpoint(t *testing.T) {
	h := startHookd(t, "")
	tn := h.newTenant()
	cust := tn.Customer.String()

	for _, multi := range []bool{false, true} {
		name := map[bool]string{false: "urlencoded", true: "multipart"}[multi]
		t.Run(name, func(t *testing.T) {
			resp, data := tokenRequest(t, h, cust, tn.ClientID, tn.Secret, goodForm, multi)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200; body %s", resp.StatusCode, data)
			}
			var tok map[string]any
			if err := json.Unmarshal(data, &tok); err != nil {
				t.Fatal(err)
			}
			if s, _ := tok["access_token"].(string); len(s) < 32 {
				t.Errorf("got access_token %v, want a long random string", tok["access_token"])
			}
			if tok["token_type"] != "Bearer" || tok["expires_in"] != float64(3600) || tok["scope"] != "*:webhooks/**" {
				t.Errorf("got %v, want token_type Bearer, expires_in 3600, scope *:webhooks/**", tok)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("got Cache-Control %q, want no-store", cc)
			}
			// The token works.
			h.mustCall(http.StatusOK, http.MethodGet, tn.path("/webhooks/subscriptions"), tok["access_token"].(string), nil, nil)
		})
	}

	tests := []struct {
		name       string
		customer   string
		user, pass string
		form       url.Values
		ct         string // overrides the form's Content-Type
		want       int
		wantParam  string
	}{
		{"wrong secret", cust, tn.ClientID, "wrong", goodForm, "", http.StatusUnauthorized, ""},
		{"empty secret", cust, tn.ClientID, "", goodForm, "", http.StatusUnauthorized, ""},
		{"unknown client", cust, uuid.NewString(), tn.Secret, goodForm, "", http.StatusUnauthorized, ""},
		{"client id not a uuid", cust, "someone", tn.Secret, goodForm, "", http.StatusUnauthorized, ""},
		{"no credentials", cust, "", "", goodForm, "", http.StatusUnauthorized, ""},
		{"other customer's path", uuid.NewString(), tn.ClientID, tn.Secret, goodForm, "", http.StatusUnauthorized, ""},
		{"bad grant_type", cust, tn.ClientID, tn.Secret, url.Values{"grant_type": {"password"}, "scope": {"*:webhooks/**"}}, "", http.StatusBadRequest, "grant_type"},
		{"no grant_type", cust, tn.ClientID, tn.Secret, url.Values{"scope": {"*:webhooks/**"}}, "", http.StatusBadRequest, "grant_type"},
		{"json body", cust, tn.ClientID, tn.Secret, goodForm, "application/json", http.StatusUnsupportedMediaType, ""},
		{"customer not a uuid", "not-a-uuid", tn.ClientID, tn.Secret, goodForm, "", http.StatusNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/"+tc.customer+"/login/token", strings.NewReader(tc.form.Encode()))
			ct := "application/x-www-form-urlencoded"
			if tc.ct != "" {
				ct = tc.ct
			}
			req.Header.Set("Content-Type", ct)
			if tc.user != "" || tc.pass != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var data bytes.Buffer
			_, _ = data.ReadFrom(resp.Body)
			resp.Body.Close()
			p := readProblem(t, resp, data.Bytes(), tc.want)
			if got := resp.Header.Get("WWW-Authenticate"); tc.want == http.StatusUnauthorized && !strings.HasPrefix(got, "Basic") {
				t.Errorf("got WWW-Authenticate %q on 401, want a Basic challenge", got)
			}
			if tc.wantParam != "" && (len(p.Params) == 0 || p.Params[0].Name != tc.wantParam) {
				t.Errorf("got invalid-body-params %+v, want %s named", p.Params, tc.wantParam)
			}
			if strings.Contains(data.String(), tn.Secret) {
				t.Error("got the secret echoed in the answer, want it never shown")
			}
		})
	}
}

func TestBearerRules(t *testing.T) {
	h := startHookd(t, "")
	a, b := h.newTenant(), h.newTenant()
	var sub struct{ ID string }
	h.mustCall(http.StatusCreated, http.MethodPost, a.path("/webhooks/subscriptions"), a.Token,
		map[string]any{"title": "mine", "endpoint": "http://127.0.0.1:1/x", "events": []string{}}, &sub)

	// A second client of a, revoked after it got a token.
	var cl struct{ ClientID, ClientSecret string }
	h.mustCall(http.StatusCreated, http.MethodPost, "/admin/customers/"+a.Customer.String()+"/clients", h.AdminToken, nil, &cl)
	revoked := h.token(a.Customer, cl.ClientID, cl.ClientSecret)
	h.mustCall(http.StatusOK, http.MethodGet, a.path("/webhooks/subscriptions"), revoked, nil, nil)
	h.mustCall(http.StatusNoContent, http.MethodDelete, "/admin/customers/"+a.Customer.String()+"/clients/"+cl.ClientID, h.AdminToken, nil, nil)

	// A token with another scope.
	resp, data := tokenRequest(t, h, a.Customer.String(), a.ClientID, a.Secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"other:thing"}}, false)
	var other struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &other) != nil || other.Scope != "other:thing" {
		t.Fatalf("token with scope other:thing: got %d %s, want 200 with that scope", resp.StatusCode, data)
	}

	list := a.path("/webhooks/subscriptions")
	tests := []struct {
		name   string
		header string // the whole Authorization header; "" sends none
		want   int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"bearer without token", "Bearer", http.StatusUnauthorized},
		{"bearer with blank token", "Bearer   ", http.StatusUnauthorized},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte(a.ClientID+":"+a.Secret)), http.StatusUnauthorized},
		{"two tokens", "Bearer " + a.Token + " " + a.Token, http.StatusUnauthorized},
		{"unknown token", "Bearer " + strings.Repeat("x", 43), http.StatusUnauthorized},
		{"lower-case scheme", "bearer " + a.Token, http.StatusOK},
		{"revoked client's token", "Bearer " + revoked, http.StatusForbidden},
		{"wrong scope", "Bearer " + other.AccessToken, http.StatusForbidden},
		{"other customer's token", "Bearer " + b.Token, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			resp, data := h.call(http.MethodGet, list, "", nil, hdr...)
			if tc.want == http.StatusOK {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("got status %d, want 200; body %s", resp.StatusCode, data)
				}
				return
			}
			readProblem(t, resp, data, tc.want)
			if got := resp.Header.Get("WWW-Authenticate"); tc.want == http.StatusUnauthorized && !strings.HasPrefix(got, "Bearer") {
				t.Errorf("got WWW-Authenticate %q, want a Bearer challenge", got)
			}
		})
	}

	t.Run("revoked client gets no new token", func(t *testing.T) {
		resp, data := tokenRequest(t, h, a.Customer.String(), cl.ClientID, cl.ClientSecret, goodForm, false)
		readProblem(t, resp, data, http.StatusUnauthorized)
	})
}

// demoLine matches the client line printed by serve --dev.
var (
	demoCustomerRe = regexp.MustCompile(`customer id:\s+(\S+)`)
	demoClientRe   = regexp.MustCompile(`client id:\s+(\S+)`)
	demoSecretRe   = regexp.MustCompile(`client secret:\s+(\S+)`)
	demoCurlRe     = regexp.MustCompile(`curl -s -u '([^']+)' -d (\S+) -d '([^']+)' \\\s+(\S+)`)
)

// demoClient reads the demo customer and client serve --dev printed.
func demoClient(t *testing.T, h *hookd) tenant {
	t.Helper()
	out := h.Stdout.String()
	c, cl, s := demoCustomerRe.FindStringSubmatch(out), demoClientRe.FindStringSubmatch(out), demoSecretRe.FindStringSubmatch(out)
	if c == nil || cl == nil || s == nil {
		t.Fatalf("got stdout %q, want the demo customer, client id and secret", out)
	}
	id, err := uuid.Parse(c[1])
	if err != nil {
		t.Fatalf("demo customer %q: %v", c[1], err)
	}
	return tenant{Customer: id, ClientID: cl[1], Secret: s[1]}
}

// TestExpiredToken: the token endpoint's token lasts --token-ttl, and a
// token past its expiry is refused as expired. Nothing waits for a token to
// expire: a token that expired a minute ago is written to the store before
// hookd starts, as the token endpoint would have written it, and the issued
// token's expiry is read from the store once hookd has stopped. (The
// switch from 200 to 403 at the expiry itself is TestAccessTokenExpires in
// httpapi, on a test clock.)
func TestExpiredToken(t *testing.T) {
	dir := t.TempDir()
	tn := tenant{Customer: uuid.New(), ClientID: uuid.NewString(), Secret: uuid.NewString()}
	expired := uuid.NewString()
	db := openStore(t, dir)
	if _, err := db.CreateClient(tn.Customer, uuid.MustParse(tn.ClientID), store.HashSecret(tn.Secret), delivery.NewKeySet); err != nil {
		t.Fatal(err)
	}
	if err := db.PutToken(store.HashSecret(expired), store.Token{CustomerID: tn.Customer, ClientID: uuid.MustParse(tn.ClientID),
		Scope: "*:webhooks/**", ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	h := startHookd(t, dir, "--token-ttl", "1s")
	before := time.Now()
	resp, data := tokenRequest(t, h, tn.Customer.String(), tn.ClientID, tn.Secret, goodForm, false)
	after := time.Now()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &tok) != nil {
		t.Fatalf("token: got %d %s, want 200", resp.StatusCode, data)
	}
	if tok.ExpiresIn != 1 {
		t.Errorf("got expires_in %d, want 1", tok.ExpiresIn)
	}
	list := tn.path("/webhooks/subscriptions")
	if resp, data := h.call(http.MethodGet, list, tok.AccessToken, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("a token just issued: got status %d, want 200; body %s", resp.StatusCode, data)
	}
	resp, data = h.call(http.MethodGet, list, expired, nil)
	if p := readProblem(t, resp, data, http.StatusForbidden); !strings.Contains(p.Details, "expired") {
		t.Errorf("got details %q, want the token called expired", p.Details)
	}

	// The issued token expires 1 s (--token-ttl) after it was issued.
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	db = openStore(t, dir)
	stored, err := db.LookupToken(store.HashSecret(tok.AccessToken))
	if err != nil {
		t.Fatalf("the issued token in the store: %v", err)
	}
	if lo, hi := before.Add(time.Second), after.Add(time.Second); stored.ExpiresAt.Before(lo) || stored.ExpiresAt.After(hi) {
		t.Errorf("got the token stored to expire at %s, want 1 s after it was asked for: between %s and %s", stored.ExpiresAt, lo, hi)
	}
}

// jwksDoc is a JWKS as served.
type jwksDoc struct {
	Keys []map[string]any `json:"keys"`
}

func fetchJWKS(t *testing.T, h *hookd, customer uuid.UUID) jwksDoc {
	t.Helper()
	resp, data := h.call(http.MethodGet, "/"+customer.String()+"/login/jwk", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks: got status %d, want 200; body %s", resp.StatusCode, data)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Errorf("got Content-Type %q, want JSON", ct)
	}
	var doc jwksDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("decode jwks %s: %v", data, err)
	}
	// The document is an RFC 7517 key set a JOSE library accepts.
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatalf("go-jose refuses the key set: %v", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() {
			t.Errorf("key %s: got public %v valid %v, want a valid public key", k.KeyID, k.IsPublic(), k.Valid())
		}
	}
	return doc
}

func kids(doc jwksDoc) []string {
	var out []string
	for _, k := range doc.Keys {
		s, _ := k["kid"].(string)
		out = append(out, s)
	}
	return out
}

func TestJWKS(t *testing.T) {
	h := startHookd(t, "")
	tn := h.newTenant()
	doc := fetchJWKS(t, h, tn.Customer)
	if len(doc.Keys) != 9 {
		t.Fatalf("got %d keys, want 9: three of each algorithm", len(doc.Keys))
	}
	seen := map[string]bool{}
	for i, k := range doc.Keys {
		// RS256, ES256, EdDSA: previous, current and next of each.
		alg := []string{"RS256", "ES256", "EdDSA"}[i/3]
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %d: got private member %s, want public keys only", i, private)
			}
		}
		if k["use"] != "sig" || k["alg"] != alg {
			t.Errorf("key %d: got use %v alg %v, want sig %s", i, k["use"], k["alg"], alg)
		}
		str := func(member string) string {
			v, ok := k[member].(string)
			if !ok {
				t.Errorf("key %d (%s): got %s = %v, want a string", i, alg, member, k[member])
			}
			return v
		}
		coord := func(member string, size int) string {
			v := str(member)
			if b, err := base64.RawURLEncoding.DecodeString(v); err != nil || len(b) != size {
				t.Errorf("key %d (%s): got %s of %d bytes (err %v), want %d", i, alg, member, len(b), err, size)
			}
			return v
		}
		var canon string // the RFC 7638 members, in lexicographic order
		switch alg {
		case "RS256":
			n, e := str("n"), str("e")
			nb, err := base64.RawURLEncoding.DecodeString(n)
			if err != nil || len(nb) != 256 || nb[0]&0x80 == 0 {
				t.Errorf("key %d: got n of %d bytes (err %v), want a 2048-bit modulus of 256 bytes", i, len(nb), err)
			}
			eb, err := base64.RawURLEncoding.DecodeString(e)
			if err != nil || new(big.Int).SetBytes(eb).Int64() != 65537 {
				t.Errorf("key %d: got e %q, want 65537", i, e)
			}
			if k["kty"] != "RSA" {
				t.Errorf("key %d: got kty %v, want RSA", i, k["kty"])
			}
			canon = `{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`
		case "ES256":
			if k["kty"] != "EC" || k["crv"] != "P-256" {
				t.Errorf("key %d: got kty %v crv %v, want EC P-256", i, k["kty"], k["crv"])
			}
			canon = `{"crv":"P-256","kty":"EC","x":"` + coord("x", 32) + `","y":"` + coord("y", 32) + `"}`
		case "EdDSA":
			if k["kty"] != "OKP" || k["crv"] != "Ed25519" {
				t.Errorf("key %d: got kty %v crv %v, want OKP Ed25519", i, k["kty"], k["crv"])
			}
			canon = `{"crv":"Ed25519","kty":"OKP","x":"` + coord("x", 32) + `"}`
		}
		kid := str("kid")
		if sum := sha256.Sum256([]byte(canon)); kid != base64.RawURLEncoding.EncodeToString(sum[:]) {
			t.Errorf("key %d (%s): got kid %s, want the RFC 7638 thumbprint of %s", i, alg, kid, canon)
		}
		if seen[kid] {
			t.Errorf("key %d: got kid %s twice, want distinct kids", i, kid)
		}
		seen[kid] = true
	}

	t.Run("unknown customer", func(t *testing.T) {
		resp, data := h.call(http.MethodGet, "/"+uuid.NewString()+"/login/jwk", "", nil)
		readProblem(t, resp, data, http.StatusNotFound)
		resp, data = h.call(http.MethodGet, "/nope/login/jwk", "", nil)
		readProblem(t, resp, data, http.StatusNotFound)
	})

	t.Run("rotation", func(t *testing.T) {
		before := kids(fetchJWKS(t, h, tn.Customer))
		// Through the admin API: the answer names the new signing key.
		var rot struct {
			Previous, Current, Next string
			Algorithms              []struct{ Alg, Previous, Current, Next string }
		}
		h.mustCall(http.StatusOK, http.MethodPost, "/admin/customers/"+tn.Customer.String()+"/keys/rotate", h.AdminToken, nil, &rot)
		after := kids(fetchJWKS(t, h, tn.Customer))
		checkRotated(t, before, after)
		if rot.Previous != before[1] || rot.Current != before[2] || rot.Next != after[2] {
			t.Errorf("got rotate answer %+v, want previous %s, current %s (the old next), next %s", rot, before[1], before[2], after[2])
		}
		if len(rot.Algorithms) != 3 {
			t.Fatalf("got rotate answer %+v, want the ids of three algorithms", rot)
		}
		for i, a := range rot.Algorithms {
			want := []string{"RS256", "ES256", "EdDSA"}[i]
			if a.Alg != want || a.Previous != after[3*i] || a.Current != after[3*i+1] || a.Next != after[3*i+2] {
				t.Errorf("got rotate answer %+v for algorithm %d, want %s with the JWKS's ids %v", a, i, want, after[3*i:3*i+3])
			}
		}

		// Through the CLI.
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"keys", "rotate", "--customer", tn.Customer.String(), "--server", h.URL, "--admin-token", h.AdminToken},
			func(string) string { return "" }, &stdout, &stderr)
		if err != nil {
			t.Fatalf("hookd keys rotate: %v; stderr %s", err, stderr.String())
		}
		third := kids(fetchJWKS(t, h, tn.Customer))
		checkRotated(t, after, third)
		if !strings.Contains(stdout.String(), "signing: "+after[2]) || !strings.Contains(stdout.String(), "EdDSA: signing "+after[8]) {
			t.Errorf("got output %q, want it to name the new signing key %s", stdout.String(), after[2])
		}
		// Tokens keep working across rotations.
		h.mustCall(http.StatusOK, http.MethodGet, tn.path("/webhooks/subscriptions"), tn.Token, nil, nil)
		// Rotating an unknown customer is 404.
		resp, data := h.call(http.MethodPost, "/admin/customers/"+uuid.NewString()+"/keys/rotate", h.AdminToken, nil)
		readProblem(t, resp, data, http.StatusNotFound)
	})
}

// checkRotated checks that after is before rotated once: for each
// algorithm, previous, current and next are the old current, the old next
// and a new key.
func checkRotated(t *testing.T, before, after []string) {
	t.Helper()
	if len(before) != 9 || len(after) != 9 {
		t.Fatalf("got %d and %d keys, want 9 and 9", len(before), len(after))
	}
	for i := 0; i < 9; i += 3 {
		checkRotatedTriple(t, before[i:i+3], after[i:i+3])
	}
}

// checkRotatedTriple checks one algorithm's keys for checkRotated.
func checkRotatedTriple(t *testing.T, before, after []string) {
	t.Helper()
	if after[0] != before[1] || after[1] != before[2] {
		t.Errorf("got kids %v after rotating %v, want the old current and next to become previous and current", after, before)
	}
	for _, k := range before {
		if after[2] == k {
			t.Errorf("got next %s, want a new key", k)
		}
	}
	for _, k := range after {
		if k == before[0] {
			t.Errorf("got retired key %s still published, want it gone", k)
		}
	}
}

// TestClientRateLimitE2E: --client-rate and --client-burst bound each
// client's calls: past the burst the answer is 429 with Retry-After, and
// another client is served.
func TestClientRateLimitE2E(t *testing.T) {
	h := startHookd(t, t.TempDir(), "--client-rate", "0.01", "--client-burst", "3")
	tn, other := h.newTenant(), h.newTenant() // one token request each
	for range 2 {
		h.mustCall(http.StatusOK, http.MethodGet, tn.path("/webhooks/subscriptions"), tn.Token, nil, nil)
	}
	resp, data := h.call(http.MethodGet, tn.path("/webhooks/subscriptions"), tn.Token, nil)
	p := readProblem(t, resp, data, http.StatusTooManyRequests)
	if p.Type != "/too-many-requests" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("got type %q, Retry-After %q, want /too-many-requests with a Retry-After", p.Type, resp.Header.Get("Retry-After"))
	}
	h.mustCall(http.StatusOK, http.MethodGet, other.path("/webhooks/subscriptions"), other.Token, nil, nil)
}
