package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// joseVerifier is the Node script that verifies a token with the npm jose
// package: a client hookd's authors did not write.
var joseVerifier = filepath.Join("testdata", "node", "verify-set.mjs")

// requireJose skips when node or the jose package is missing, or fails
// under HOOKD_REQUIRE_EXTERNAL=1 (make test installs them with
// .ci/node-deps.sh).
func requireJose(t *testing.T) {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join("testdata", "node", "node_modules", "jose", "package.json")); err != nil {
		missing = "testdata/node/node_modules/jose is missing (run bash .ci/node-deps.sh)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("HOOKD_REQUIRE_EXTERNAL") == "1" {
		t.Fatalf("%s, and HOOKD_REQUIRE_EXTERNAL=1", missing)
	}
	t.Skipf("skipping: %s", missing)
}

// joseResult is what verify-set.mjs prints for a valid token.
type joseResult struct {
	Payload struct {
		Iss    string                     `json:"iss"`
		Iat    int64                      `json:"iat"`
		Jti    string                     `json:"jti"`
		Aud    []string                   `json:"aud"`
		Txn    string                     `json:"txn"`
		Toe    int64                      `json:"toe"`
		Events map[string]json.RawMessage `json:"events"`
	} `json:"payload"`
	ProtectedHeader struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	} `json:"protectedHeader"`
}

// joseVerify runs the verifier, allowing the algorithms algs (RS256 when
// none); errText is its complaint when the token is refused.
func joseVerify(t *testing.T, jwks []byte, token, issuer, audience string, algs ...string) (res joseResult, errText string) {
	t.Helper()
	in := map[string]any{"jwks": json.RawMessage(jwks), "token": token, "issuer": issuer, "audience": audience}
	if len(algs) > 0 {
		in["algorithms"] = algs
	}
	input, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", joseVerifier)
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if stderr.Len() == 0 {
			t.Fatalf("node %s: %v", joseVerifier, err)
		}
		return res, strings.TrimSpace(stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("decode %s: %v", stdout.Bytes(), err)
	}
	return res, ""
}

func TestDeliveredTokensVerifyWithNodeJose(t *testing.T) {
	requireJose(t)
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	l := newEvListener(t, nil)
	sid := addSub(h, tn, map[string]any{"title": "jose", "endpoint": l.URL, "events": []string{"entityUpdated"}})
	jwk := func() []byte {
		resp, body := h.call(http.MethodGet, tn.path("/login/jwk"), "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("jwk: got %d, want 200", resp.StatusCode)
		}
		return body
	}
	issuer := h.URL + "/" + tn.Customer.String() + "/webhooks"
	txn := "5b1f3a52-6d2c-4f8e-9a57-3c1d2e4f6a7b"
	line := strings.Replace(evLine("entityUpdated", "jose-user"), `}}`, `},"txn":"`+txn+`","toe":1700000042}`, 1)
	id := postNDJSON(h, tn, line).ids(sid)[0]
	waitEventState(h, tn, sid, id, "success")
	token := l.received()[0]

	keys := jwk()
	res, errText := joseVerify(t, keys, token, issuer, l.URL)
	if errText != "" {
		t.Fatalf("jose refused the delivered token: %s", errText)
	}
	p := res.Payload
	if p.Iss != issuer || len(p.Aud) != 1 || p.Aud[0] != l.URL || p.Jti != id.String() || p.Txn != txn || p.Toe != 1700000042 || p.Iat == 0 {
		t.Errorf("got payload %+v, want iss %s, aud [%s], jti %s, txn %s, toe 1700000042", p, issuer, l.URL, id, txn)
	}
	var ev map[string]any
	if err := json.Unmarshal(p.Events["entityUpdated"], &ev); err != nil || ev["sub"] != "jose-user" || len(p.Events) != 1 {
		t.Errorf("got events %s, want one entityUpdated for jose-user", p.Events)
	}
	if hd := res.ProtectedHeader; hd.Alg != "RS256" || hd.Typ != "secevent+jwt" || hd.Kid == "" {
		t.Errorf("got header %+v, want RS256, secevent+jwt and a kid", hd)
	}

	// jose refuses a wrong audience, a wrong issuer and a changed payload.
	if _, errText := joseVerify(t, keys, token, issuer, "https://someone-else.example/hook"); errText == "" {
		t.Error("jose accepted the token for another audience")
	}
	if _, errText := joseVerify(t, keys, token, h.URL+"/"+tn.Customer.String(), l.URL); errText == "" {
		t.Error("jose accepted the token for another issuer")
	}
	parts := strings.Split(token, ".")
	tampered := parts[0] + "." + parts[1][:len(parts[1])-2] + "xx." + parts[2]
	if _, errText := joseVerify(t, keys, tampered, issuer, l.URL); errText == "" {
		t.Error("jose accepted a tampered token")
	}

	// After a key rotation the next token is signed with the new key (the
	// rotate route tells the dispatcher at once); the key set still
	// verifies the old token too.
	var rotation struct{ Current string }
	h.mustCall(http.StatusOK, http.MethodPost, "/admin/customers/"+tn.Customer.String()+"/keys/rotate", h.AdminToken, nil, &rotation)
	id2 := postNDJSON(h, tn, evLine("entityUpdated", "after-rotation")).ids(sid)[0]
	signed := waitEventState(h, tn, sid, id2, "success").Request.Payload
	if kid := tokenKid(t, signed); kid != rotation.Current {
		t.Errorf("got the first token after the rotation signed with kid %s, want the new current key %s", kid, rotation.Current)
	}
	if !slices.Contains(l.received(), signed) {
		t.Errorf("event %s: the listener did not receive the token the event shows", id2)
	}
	rotated := jwk()
	res2, errText := joseVerify(t, rotated, signed, issuer, l.URL)
	if errText != "" {
		t.Fatalf("jose refused the token signed after rotation: %s", errText)
	}
	if res2.ProtectedHeader.Kid == res.ProtectedHeader.Kid {
		t.Errorf("got kid %s after rotation, want a new one", res2.ProtectedHeader.Kid)
	}
	if _, errText := joseVerify(t, rotated, token, issuer, l.URL); errText != "" {
		t.Errorf("jose refused the pre-rotation token with the rotated key set: %s", errText)
	}
}

// tokenKid decodes a token's protected header without checking it and
// returns its kid.
func tokenKid(t *testing.T, token string) string {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	data, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("token header %q: %v", head, err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatalf("token header %s: %v", data, err)
	}
	return h.Kid
}

// TestES256AndEdDSATokensVerifyWithNodeJose: subscriptions that choose
// ES256 and EdDSA get tokens that jose verifies against the published
// JWKS, each with the alg and the kid of the current key of its
// algorithm; a patch of the algorithm signs the next token with the new one.
func TestES256AndEdDSATokensVerifyWithNodeJose(t *testing.T) {
	requireJose(t)
	h := startHookd(t, "", fastDelivery...)
	tn := h.newTenant()
	issuer := h.URL + "/" + tn.Customer.String() + "/webhooks"
	type target struct {
		alg string
		l   *evListener
		sid uuid.UUID
	}
	var targets []target
	for _, alg := range []string{"ES256", "EdDSA"} {
		l := newEvListener(t, nil)
		sid := addSub(h, tn, map[string]any{"title": "jose " + alg, "endpoint": l.URL, "events": []string{"entityUpdated"}, "signing": map[string]string{"alg": alg}})
		targets = append(targets, target{alg, l, sid})
	}
	ids := postNDJSON(h, tn, evLine("entityUpdated", "jose-user"))
	resp, keys := h.call(http.MethodGet, tn.path("/login/jwk"), "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("jwk: got %d, want 200", resp.StatusCode)
	}
	var doc jwksDoc
	if err := json.Unmarshal(keys, &doc); err != nil {
		t.Fatal(err)
	}
	// current is the kid of each algorithm's current key: the middle one
	// of its three.
	current := map[string]string{}
	for i := 1; i < len(doc.Keys); i += 3 {
		alg, _ := doc.Keys[i]["alg"].(string)
		current[alg], _ = doc.Keys[i]["kid"].(string)
	}
	for _, tg := range targets {
		id := ids.ids(tg.sid)[0]
		waitEventState(h, tn, tg.sid, id, "success")
		token := tg.l.received()[0]
		res, errText := joseVerify(t, keys, token, issuer, tg.l.URL, tg.alg)
		if errText != "" {
			t.Fatalf("%s: jose refused the delivered token: %s", tg.alg, errText)
		}
		if hd := res.ProtectedHeader; hd.Alg != tg.alg || hd.Typ != "secevent+jwt" || hd.Kid == "" || hd.Kid != current[tg.alg] {
			t.Errorf("%s: got header %+v, want alg %s, secevent+jwt and the kid of its current key %s", tg.alg, hd, tg.alg, current[tg.alg])
		}
		if p := res.Payload; p.Iss != issuer || p.Jti != id.String() || len(p.Aud) != 1 || p.Aud[0] != tg.l.URL {
			t.Errorf("%s: got payload %+v, want iss %s, jti %s, aud [%s]", tg.alg, p, issuer, id, tg.l.URL)
		}
		// A verifier that allows only RS256 refuses it, and jose refuses a
		// changed payload.
		if _, errText := joseVerify(t, keys, token, issuer, tg.l.URL); errText == "" {
			t.Errorf("%s: jose accepted the token with only RS256 allowed", tg.alg)
		}
		parts := strings.Split(token, ".")
		tampered := parts[0] + "." + parts[1][:len(parts[1])-2] + "xx." + parts[2]
		if _, errText := joseVerify(t, keys, tampered, issuer, tg.l.URL, tg.alg); errText == "" {
			t.Errorf("%s: jose accepted a tampered token", tg.alg)
		}
	}

	// The ES256 subscription switches to EdDSA: its next token is EdDSA.
	es := targets[0]
	h.mustCall(http.StatusOK, http.MethodPatch, tn.path("/webhooks/subscriptions/"+es.sid.String()), tn.Token, map[string]any{"signing": map[string]string{"alg": "EdDSA"}}, nil)
	id2 := postNDJSON(h, tn, evLine("entityUpdated", "after-patch")).ids(es.sid)[0]
	waitEventState(h, tn, es.sid, id2, "success")
	res, errText := joseVerify(t, keys, es.l.received()[1], issuer, es.l.URL, "EdDSA")
	if errText != "" {
		t.Fatalf("jose refused the token signed after the patch: %s", errText)
	}
	if res.ProtectedHeader.Alg != "EdDSA" || res.ProtectedHeader.Kid != current["EdDSA"] {
		t.Errorf("got header %+v after the patch, want EdDSA with kid %s", res.ProtectedHeader, current["EdDSA"])
	}
}
