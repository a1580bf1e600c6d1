package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestProfilesNeedTheAdminToken: /debug/pprof/ serves the runtime's
// profiles to the admin token only, and a CPU profile may run past the
// API timeout.
func TestProfilesNeedTheAdminToken(t *testing.T) {
	db, _, customerToken := testTenant(t)
	srv := httptest.NewServer(New(Options{DB: db, AdminToken: "admin-secret", APITimeout: 100 * time.Millisecond}))
	t.Cleanup(srv.Close)
	get := func(path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {customerToken, http.StatusForbidden}, {"wrong", http.StatusForbidden}} {
		if code, _ := get("/debug/pprof/heap", c.token); code != c.want {
			t.Errorf("heap profile with token %q: got %d, want %d", c.token, code, c.want)
		}
	}
	if code, body := get("/debug/pprof/", "admin-secret"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("index: got %d %.80q, want 200 listing the profiles", code, body)
	}
	if code, body := get("/debug/pprof/heap?debug=1", "admin-secret"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("heap: got %d %.80q, want 200 and a heap profile", code, body)
	}
	// One second of CPU profile: ten times the API timeout of this server.
	if code, body := get("/debug/pprof/profile?seconds=1", "admin-secret"); code != http.StatusOK || len(body) == 0 {
		t.Errorf("CPU profile: got %d with %d bytes, want 200 and a profile", code, len(body))
	}
}
