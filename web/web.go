// Package web serves hookd's console: a static page (HTML, CSS and plain
// JavaScript modules, no build step) embedded in the binary. The page signs
// in with a client id and secret and then talks to the public API on the
// same origin, keeping its access token in memory only.
//
// The handler serves paths relative to where it is mounted, so the server
// strips its prefix:
//
//	mux.Handle("/console/", http.StripPrefix("/console", web.Handler()))
//
// All asset references in the page are relative (app.js, style.css), so the
// console works under any prefix that ends in a slash.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// contentSecurityPolicy allows only the console's own files: no inline
// script or style, no framing, fetch only to the same origin. Blob URLs are
// allowed as images so a saved export never trips the policy.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// contentTypes maps the extensions of the embedded files to their media
// types, so responses do not depend on the host's mime tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// asset is one embedded file ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// console serves the embedded assets by their name relative to the mount
// point.
type console struct {
	assets map[string]asset
}

// Handler returns the console's handler. It answers GET and HEAD for the
// page ("" or "/" or "/index.html") and its assets, 404 for any other path
// and 405 for other methods. Every response carries Cache-Control: no-cache
// (with a strong ETag, so revalidation is cheap) and a strict
// Content-Security-Policy.
func Handler() http.Handler {
	c := &console{assets: make(map[string]asset)}
	// The embedded tree is fixed at build time and the walk cannot fail on
	// it; web_test.go serves every file, so a broken embed fails the tests.
	_ = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		c.assets[strings.TrimPrefix(p, "static/")] = asset{
			body:        body,
			contentType: ct,
			etag:        `"` + hex.EncodeToString(sum[:16]) + `"`,
		}
		return nil
	})
	return c
}

// ServeHTTP implements http.Handler.
func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	a, ok := c.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
