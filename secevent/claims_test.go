package secevent

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// goldenClaims are the claims written in testdata/claims.golden.
var goldenClaims = Claims{
	Issuer:      "https://hookd.example/1b9e7a52-5f0c-4f57-9a1e-3c2d8f0b6a11/webhooks",
	IssuedAt:    1700000000,
	ID:          "6f2d4c1e-8b7a-4e3f-9d2c-1a0b9c8d7e6f",
	Audience:    []string{"https://listener.example/hooks?a=1&b=2"},
	Txn:         "0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b",
	TimeOfEvent: 1699999990,
	EventType:   "entityUpdated",
	Event:       json.RawMessage(`{"captureApplicationId":"app","captureClientId":"client","entityType":"user","globalSub":"capture-v1://x/y","sub":"s1","attributes":["givenName","email"]}`),
}

// objectKeys returns the member names of the top-level JSON object in
// order.
func objectKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", data)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
	}
	return keys
}

func TestAppendClaimsGolden(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "claims.golden"))
	if err != nil {
		t.Fatal(err)
	}
	golden = bytes.TrimSuffix(golden, []byte("\n"))
	got := AppendClaims(nil, goldenClaims)

	var gotV, wantV any
	if err := json.Unmarshal(got, &gotV); err != nil {
		t.Fatalf("AppendClaims output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(golden, &wantV); err != nil {
		t.Fatalf("golden file is not JSON: %v", err)
	}
	if !reflect.DeepEqual(gotV, wantV) {
		t.Errorf("decoded claims:\ngot  %v\nwant %v", gotV, wantV)
	}
	wantKeys := []string{"iss", "iat", "jti", "aud", "txn", "toe", "events"}
	if keys := objectKeys(t, got); !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("key order: got %v, want %v", keys, wantKeys)
	}
	if !bytes.Equal(got, golden) {
		t.Errorf("bytes:\ngot  %s\nwant %s", got, golden)
	}
}

func TestAppendClaimsShapes(t *testing.T) {
	tests := []struct {
		name string
		c    Claims
		want string
	}{
		{
			name: "no txn",
			c:    Claims{Issuer: "i", IssuedAt: 1, ID: "j", Audience: []string{"a"}, TimeOfEvent: 2, EventType: "entityCreated", Event: json.RawMessage(`{"sub":"s"}`)},
			want: `{"iss":"i","iat":1,"jti":"j","aud":["a"],"toe":2,"events":{"entityCreated":{"sub":"s"}}}`,
		},
		{
			name: "two audiences, negative time",
			c:    Claims{Issuer: "i", IssuedAt: -5, ID: "j", Audience: []string{"a", "b"}, Txn: "t", TimeOfEvent: 0, EventType: "x", Event: json.RawMessage(`[]`)},
			want: `{"iss":"i","iat":-5,"jti":"j","aud":["a","b"],"txn":"t","toe":0,"events":{"x":[]}}`,
		},
		{
			name: "zero value",
			c:    Claims{},
			want: `{"iss":"","iat":0,"jti":"","aud":[],"toe":0,"events":{"":{}}}`,
		},
		{
			name: "escaping",
			c:    Claims{Issuer: "a\"b\\c\n\t\x01</>&", ID: "é\u2028", Audience: []string{"\xff"}, EventType: "e"},
			want: `{"iss":"a\"b\\c\n\t\u0001</>&","iat":0,"jti":"é\u2028","aud":["\ufffd"],"toe":0,"events":{"e":{}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendClaims([]byte("prefix:"), tt.c)
			if want := "prefix:" + tt.want; string(got) != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if !json.Valid(got[len("prefix:"):]) {
				t.Errorf("output is not valid JSON: %s", got)
			}
		})
	}
}

// checkJSONString checks that AppendJSONString(s) is a JSON string that
// decodes to what encoding/json's own encoding of s decodes to.
func checkJSONString(t *testing.T, s string) {
	t.Helper()
	enc := AppendJSONString(nil, s)
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatalf("AppendJSONString(%q) = %s: not a JSON string: %v", s, enc, err)
	}
	ref, _ := json.Marshal(s)
	var want string
	if err := json.Unmarshal(ref, &want); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("AppendJSONString(%q) decodes to %q, want %q", s, got, want)
	}
	if bytes.ContainsAny(enc, "\u2028\u2029") {
		t.Errorf("AppendJSONString(%q) = %s: unescaped line separator", s, enc)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"", "plain", `"`, `\`, "\x00\x1f\x7f", "\b\f\n\r\t", "日本語", "\u2028\u2029",
		"\xff\xfe", "a\xc3", "\xed\xa0\x80", "emoji 🎉", strings.Repeat("x\"", 100),
	} {
		checkJSONString(t, s)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00", "\u2028", "\xff", "é"} {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}

func TestAppendClaimsAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendClaims(buf[:0], goldenClaims)
	})
	if allocs != 0 {
		t.Errorf("allocations per AppendClaims into a large enough buffer: got %v, want 0", allocs)
	}
}

func BenchmarkAppendClaims(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendClaims(buf[:0], goldenClaims)
	}
	b.SetBytes(int64(len(buf)))
}
