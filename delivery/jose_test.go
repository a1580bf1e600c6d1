package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"hookd/secevent"
)

// verifyScript is the Node verifier, relative to this package.
var verifyScript = filepath.Join("..", "e2e", "testdata", "node", "verify-set.mjs")

// requireNodeJose skips the test when node or the jose package is absent,
// or fails it when HOOKD_REQUIRE_EXTERNAL=1.
func requireNodeJose(t *testing.T) {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join("..", "e2e", "testdata", "node", "node_modules", "jose", "package.json")); err != nil {
		missing = "e2e/testdata/node/node_modules/jose is missing (run bash .ci/node-deps.sh)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("HOOKD_REQUIRE_EXTERNAL") == "1" {
		t.Fatalf("%s, and HOOKD_REQUIRE_EXTERNAL=1", missing)
	}
	t.Skipf("skipping: %s", missing)
}

// nodeVerify runs verify-set.mjs and returns its stdout, or its stderr as
// the error text.
func nodeVerify(t *testing.T, jwks []byte, token, issuer, audience string) (out []byte, errText string) {
	t.Helper()
	input, err := json.Marshal(map[string]any{
		"jwks": json.RawMessage(jwks), "token": token, "issuer": issuer, "audience": audience,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", verifyScript)
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if stderr.Len() == 0 {
			t.Fatalf("node %s: %v", verifyScript, err)
		}
		return nil, strings.TrimSpace(stderr.String())
	}
	return stdout.Bytes(), ""
}

func TestTokenVerifiesWithNodeJose(t *testing.T) {
	requireNodeJose(t)
	k, outsider := testKey(t, 0), testKey(t, 1)
	signer, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	claims := goldenClaims
	claims.IssuedAt = time.Now().Unix()
	token, err := signer.Sign(secevent.AppendClaims(nil, claims))
	if err != nil {
		t.Fatal(err)
	}
	// A second key in the set, as in a rotation.
	spare, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := JWKS(&spare.Private.PublicKey, &k.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	out, errText := nodeVerify(t, jwks, token, claims.Issuer, claims.Audience[0])
	if errText != "" {
		t.Fatalf("jose rejected a good token: %s", errText)
	}
	var got struct {
		Payload         map[string]any `json:"payload"`
		ProtectedHeader map[string]any `json:"protectedHeader"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("verifier output %s: %v", out, err)
	}
	wantHeader := map[string]any{"alg": "RS256", "kid": k.ID, "typ": "secevent+jwt"}
	if !reflect.DeepEqual(got.ProtectedHeader, wantHeader) {
		t.Errorf("protected header: got %v, want %v", got.ProtectedHeader, wantHeader)
	}
	var wantPayload map[string]any
	if err := json.Unmarshal(secevent.AppendClaims(nil, claims), &wantPayload); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Payload, wantPayload) {
		t.Errorf("payload: got %v, want %v", got.Payload, wantPayload)
	}

	// Refusals: each must fail with jose's error.
	forged, err := Sign(outsider, secevent.AppendClaims(nil, claims))
	if err != nil {
		t.Fatal(err)
	}
	plainJWT, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := plainJWT.Sign(secevent.AppendClaims(nil, claims))
	if err != nil {
		t.Fatal(err)
	}
	wrongTyp, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		token    string
		issuer   string
		audience string
		want     string
	}{
		{name: "key not in the set", token: forged, issuer: claims.Issuer, audience: claims.Audience[0], want: "ERR_JWKS_NO_MATCHING_KEY"},
		{name: "wrong audience", token: token, issuer: claims.Issuer, audience: "https://other.example/hooks", want: "ERR_JWT_CLAIM_VALIDATION_FAILED"},
		{name: "wrong typ", token: wrongTyp, issuer: claims.Issuer, audience: claims.Audience[0], want: `"typ"`},
		{name: "wrong issuer", token: token, issuer: "https://other.example/x/webhooks", audience: claims.Audience[0], want: "ERR_JWT_CLAIM_VALIDATION_FAILED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errText := nodeVerify(t, jwks, tt.token, tt.issuer, tt.audience)
			if errText == "" {
				t.Fatalf("jose accepted the token: %s", out)
			}
			if !strings.Contains(errText, tt.want) {
				t.Errorf("error: got %q, want it to contain %q", errText, tt.want)
			}
		})
	}
}
