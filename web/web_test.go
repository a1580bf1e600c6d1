package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"hookd/web"
)

// newServer mounts the console the way hookd serves it: under /console/
// with the prefix stripped.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", web.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func TestServesAssets(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		path        string
		contentType string
		contains    string
	}{
		{"/console/", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/console/index.html", "text/html; charset=utf-8", "<title>hookd console</title>"},
		{"/console/app.js", "text/javascript; charset=utf-8", "import"},
		{"/console/api.js", "text/javascript; charset=utf-8", "login/token"},
		{"/console/style.css", "text/css; charset=utf-8", ":root"},
		{"/console/icon.svg", "image/svg+xml", "<svg"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, body := get(t, srv.URL+tt.path, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want %d", res.StatusCode, http.StatusOK)
			}
			want := map[string]string{
				"Content-Type":           tt.contentType,
				"Cache-Control":          "no-cache",
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "no-referrer",
				"X-Frame-Options":        "DENY",
			}
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s: got %q, want %q", k, got, v)
				}
			}
			csp := res.Header.Get("Content-Security-Policy")
			for _, directive := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
				if !strings.Contains(csp, directive) {
					t.Errorf("Content-Security-Policy: got %q, want it to contain %q", csp, directive)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("Content-Security-Policy: got %q, want no unsafe-inline or unsafe-eval", csp)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body: got %.200q..., want it to contain %q", body, tt.contains)
			}
		})
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	srv := newServer(t)
	for _, path := range []string{"/console/nope.js", "/console/static/app.js", "/console/../go.mod", "/console/app.js/x"} {
		res, _ := get(t, srv.URL+path, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want %d", path, res.StatusCode, http.StatusNotFound)
		}
	}

	res, err := http.Post(srv.URL+"/console/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: got %d, want %d", res.StatusCode, http.StatusMethodNotAllowed)
	}
	if got := res.Header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow: got %q, want %q", got, "GET, HEAD")
	}
}

func TestRevalidation(t *testing.T) {
	srv := newServer(t)
	res, _ := get(t, srv.URL+"/console/app.js", nil)
	etag := res.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag: got %q, want a strong ETag", etag)
	}
	res, body := get(t, srv.URL+"/console/app.js", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: got %d, want %d", res.StatusCode, http.StatusNotModified)
	}
	if body != "" {
		t.Errorf("304 body: got %d bytes, want none", len(body))
	}
}

// TestPageReferences checks the page against the Content-Security-Policy
// and the handler: no inline script or style, relative references only,
// and every referenced file (including module imports) is served.
func TestPageReferences(t *testing.T) {
	srv := newServer(t)
	_, index := get(t, srv.URL+"/console/", nil)

	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`),     // inline script
		regexp.MustCompile(`<script(?:(?:\s[^>]*)?\s)?>`),       // script without src
		regexp.MustCompile(`\son[a-z]+\s*=`),                    // inline handlers
		regexp.MustCompile(`\sstyle\s*=|<style`),                // inline styles
		regexp.MustCompile(`(?:src|href)\s*=\s*"(?:/|https?:)`), // absolute or external references
	} {
		if m := bad.FindString(index); m != "" {
			t.Errorf("index.html: got %q, want no match of %s", m, bad)
		}
	}

	refs := regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) == 0 {
		t.Fatal("index.html: got no src or href references, want some")
	}
	seen := map[string]bool{}
	queue := []string{}
	for _, m := range refs {
		queue = append(queue, m[1])
	}
	importRE := regexp.MustCompile(`(?m)^import\s[^'"]*['"]\./([^'"]+)['"]`)
	for len(queue) > 0 {
		ref := queue[0]
		queue = queue[1:]
		if seen[ref] {
			continue
		}
		seen[ref] = true
		res, body := get(t, srv.URL+"/console/"+ref, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d, want %d", ref, res.StatusCode, http.StatusOK)
			continue
		}
		if !strings.HasSuffix(ref, ".js") {
			continue
		}
		for _, m := range importRE.FindAllStringSubmatch(body, -1) {
			queue = append(queue, m[1])
		}
		// The access token lives in memory only.
		for _, storage := range []string{"localStorage", "sessionStorage", "document.cookie", "innerHTML", "eval("} {
			if strings.Contains(body, storage) {
				t.Errorf("%s: got a use of %s, want none", ref, storage)
			}
		}
	}
	for _, want := range []string{"app.js", "api.js", "dom.js", "subs.js", "subform.js", "detail.js", "events.js", "exports.js", "style.css"} {
		if !seen[want] {
			t.Errorf("references: got %v, want %s among them", seen, want)
		}
	}
}

// TestStripPrefixForms serves the console with either form of the prefix
// stripped: "/console" leaves "/app.js", "/console/" leaves "app.js".
func TestStripPrefixForms(t *testing.T) {
	for _, prefix := range []string{"/console", "/console/"} {
		t.Run(prefix, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle("/console/", http.StripPrefix(prefix, web.Handler()))
			srv := httptest.NewServer(mux)
			defer srv.Close()
			for path, want := range map[string]string{
				"/console/":          "text/html; charset=utf-8",
				"/console/app.js":    "text/javascript; charset=utf-8",
				"/console/style.css": "text/css; charset=utf-8",
			} {
				res, _ := get(t, srv.URL+path, nil)
				if res.StatusCode != http.StatusOK {
					t.Errorf("GET %s: got %d, want %d", path, res.StatusCode, http.StatusOK)
				}
				if got := res.Header.Get("Content-Type"); got != want {
					t.Errorf("GET %s Content-Type: got %q, want %q", path, got, want)
				}
			}
		})
	}
}
