package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
)

// TestReplayExportFileToFreshListener is the round trip a customer makes
// after an outage: the failures are exported, the subscription and its
// events are deleted, the keys rotated, and hookd replay sends the file to
// a fresh listener. Each token verifies with the npm jose package, with the
// exported jti, the new endpoint as aud and the current key's kid. A bad
// line stops the command with its line number; a second run records
// nothing.
func TestReplayExportFileToFreshListener(t *testing.T) {
	requireJose(t)
	h := startHookd(t, "", append([]string{"--export-cooldown", "0", "--export-encoding", "zstd"}, fastDelivery...)...)
	tn := h.newTenant()
	broken := addSub(h, tn, map[string]any{"title": "broken", "endpoint": "http://127.0.0.1:1/hook",
		"events": []string{"entityCreated", "entityUpdated"}, "enabled": false})

	// Five failures; two carry the sender's id, which becomes their jti
	// (and which the intake keeps for the retention period).
	senderIDs := []uuid.UUID{uuid.New(), uuid.New()}
	lines := []string{
		strings.Replace(evLine("entityCreated", "u1"), `{"type"`, `{"id":"`+senderIDs[0].String()+`","type"`, 1),
		strings.Replace(evLine("entityUpdated", "u2"), `{"type"`, `{"id":"`+senderIDs[1].String()+`","type"`, 1),
		evLine("entityCreated", "u3"), evLine("entityUpdated", "u4"), evLine("entityCreated", "u5"),
	}
	ans := postNDJSON(h, tn, lines...)
	stored := ans.ids(broken)
	if len(stored) != 5 {
		t.Fatalf("intake: got %d events for the subscription, want 5", len(stored))
	}
	wantJtis := []string{senderIDs[0].String(), senderIDs[1].String(), stored[2].String(), stored[3].String(), stored[4].String()}

	// Export them and download the file as stored (zstd).
	exports := subPath(tn, broken, "/exports")
	var job exportView
	h.mustCall(http.StatusAccepted, http.MethodPost, exports, tn.Token, nil, &job)
	if job = waitExport(h, tn, exports+"/"+job.ID.String()); job.State != "completed" {
		t.Fatalf("export: got %s, want completed", job.State)
	}
	resp, data := download(h, tn, exports+"/"+job.ID.String()+"/download")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "zstd" {
		t.Fatalf("download: got %d, Content-Encoding %q; want 200 zstd", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	file := filepath.Join(t.TempDir(), "failed.ndjson.zst")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// The events leave the store with their subscription; the keys turn.
	h.mustCall(http.StatusNoContent, http.MethodDelete, subPath(tn, broken, ""), tn.Token, nil, nil)
	var rot struct{ Current string }
	h.mustCall(http.StatusOK, http.MethodPost, "/admin/customers/"+tn.Customer.String()+"/keys/rotate", h.AdminToken, nil, &rot)
	l := newEvListener(t, nil)
	fresh := addSub(h, tn, map[string]any{"title": "fresh", "endpoint": l.URL, "events": []string{"entityDeleted"}})

	replay := func(path string) (string, string, error) {
		return cliRun(t, t.Context(), "replay", "--data", h.Data, "--customer", tn.Customer.String(), "--subscription", fresh.String(), path)
	}
	stdout, stderr, err := replay(file)
	if err != nil {
		t.Fatalf("replay: %v\n%s%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "5 events recorded for delivery; 0 were replayed before") || !strings.Contains(stderr, "replay: ") {
		t.Errorf("got output %q and progress %q, want 5 events recorded and progress on stderr", stdout, stderr)
	}
	var tokens []string
	for deadline := time.Now().Add(20 * time.Second); len(tokens) < 5; tokens = l.received() {
		if time.Now().After(deadline) {
			t.Fatalf("the fresh listener got %d tokens in 20s, want 5", len(tokens))
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, jwks := h.call(http.MethodGet, tn.path("/login/jwk"), "", nil)
	issuer := h.URL + "/" + tn.Customer.String() + "/webhooks"
	var gotJtis []string
	for _, token := range tokens {
		res, errText := joseVerify(t, jwks, token, issuer, l.URL)
		if errText != "" {
			t.Fatalf("jose refused a replayed token: %s", errText)
		}
		if res.ProtectedHeader.Kid != rot.Current {
			t.Errorf("got kid %s, want the current key %s", res.ProtectedHeader.Kid, rot.Current)
		}
		if len(res.Payload.Aud) != 1 || res.Payload.Aud[0] != l.URL || len(res.Payload.Events) != 1 {
			t.Errorf("got payload %+v, want aud [%s] and one event", res.Payload, l.URL)
		}
		gotJtis = append(gotJtis, res.Payload.Jti)
	}
	slices.Sort(gotJtis)
	slices.Sort(wantJtis)
	if !slices.Equal(gotJtis, wantJtis) {
		t.Errorf("got jtis %v, want the exported %v", gotJtis, wantJtis)
	}

	// A second run records nothing.
	stdout, stderr, err = replay(file)
	if err != nil || !strings.Contains(stdout, "0 events recorded for delivery; 5 were replayed before") {
		t.Errorf("second replay: got %v, %q %q; want nothing recorded, 5 replayed before", err, stdout, stderr)
	}
	if s := getSummary(h, tn, fresh); s.Total != 5 {
		t.Errorf("got %d events of the fresh subscription, want 5", s.Total)
	}

	// A line that is not a SET claims object stops the command with its
	// number, whether the command or hookd finds it; hookd's refusal
	// records nothing of its batch.
	zr, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := zr.DecodeAll(data, nil)
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(string(plain), "\n", 2)[0]
	for _, tc := range []struct{ bad, want string }{
		{lines[0], "line 3: not a SET claims object"},
		{strings.Replace(first, `"jti":"`, `"jti":"x`, 1), "line 3: jti"},
	} {
		badFile := filepath.Join(t.TempDir(), "bad.ndjson")
		again := strings.Replace(first, `"jti":"`+jtiOf(first), `"jti":"`+uuid.NewString(), 1)
		if err := os.WriteFile(badFile, []byte(again+"\n\n"+tc.bad+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err := replay(badFile)
		if err == nil || !strings.Contains(err.Error(), "bad.ndjson "+tc.want) {
			t.Errorf("bad line: got %v (%q %q), want an error naming bad.ndjson %s", err, stdout, stderr, tc.want)
		}
	}
	if s := getSummary(h, tn, fresh); s.Total != 5 {
		t.Errorf("after the refused files: got %d events of the fresh subscription, want 5", s.Total)
	}
}

// jtiOf returns the jti of an export line.
func jtiOf(line string) string {
	_, rest, _ := strings.Cut(line, `"jti":"`)
	jti, _, _ := strings.Cut(rest, `"`)
	return jti
}

// TestReplayExportThroughTheAPI: a customer replays a completed export
// from hookd's own bucket to the subscription's new endpoint; a second
// request, on the other path form, records nothing.
func TestReplayExportThroughTheAPI(t *testing.T) {
	h := startHookd(t, "", append([]string{"--export-cooldown", "0", "--export-encoding", "gzip"}, fastDelivery...)...)
	tn := h.newTenant()
	sid := addSub(h, tn, map[string]any{"title": "moved", "endpoint": "http://127.0.0.1:1/hook", "events": []string{"entityCreated"}, "enabled": false})
	ids := postNDJSON(h, tn, evLine("entityCreated", "u1"), evLine("entityCreated", "u2"), evLine("entityCreated", "u3")).ids(sid)
	exports := subPath(tn, sid, "/exports")
	var job exportView
	h.mustCall(http.StatusAccepted, http.MethodPost, exports, tn.Token, nil, &job)
	if job = waitExport(h, tn, exports+"/"+job.ID.String()); job.State != "completed" {
		t.Fatalf("export: got %s, want completed", job.State)
	}
	l := newEvListener(t, nil)
	h.mustCall(http.StatusOK, http.MethodPatch, subPath(tn, sid, ""), tn.Token, map[string]any{"endpoint": l.URL, "enabled": true}, nil)

	type answer struct {
		Lines, Recorded, Duplicates int
		Complete                    bool
	}
	var rep answer
	h.mustCall(http.StatusAccepted, http.MethodPost, exports+"/"+job.ID.String()+"/replay", tn.Token, nil, &rep)
	if rep != (answer{Lines: 3, Recorded: 3, Complete: true}) {
		t.Fatalf("replay: got %+v, want 3 lines recorded, complete", rep)
	}
	var tokens []string
	for deadline := time.Now().Add(20 * time.Second); len(tokens) < 3; tokens = l.received() {
		if time.Now().After(deadline) {
			t.Fatalf("the new endpoint got %d tokens in 20s, want 3", len(tokens))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var got, want []string
	for i, token := range tokens {
		c := tokenClaims(t, token)
		got, want = append(got, c["jti"].(string)), append(want, ids[i].String())
		if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != l.URL {
			t.Errorf("got aud %v, want [%s]", c["aud"], l.URL)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got jtis %v, want the exported %v", got, want)
	}

	rep = answer{}
	h.mustCall(http.StatusAccepted, http.MethodPost, subPath(tn, sid, "/events/exports/"+job.ID.String()+"/replay"), tn.Token, nil, &rep)
	if rep != (answer{Lines: 3, Duplicates: 3, Complete: true}) {
		t.Errorf("replay again: got %+v, want 3 lines, all duplicates", rep)
	}
}
