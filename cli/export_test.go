package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/envflag"
)

// exportServer serves one export file the way hookd's exports API does
// (token endpoint, job, download with ETag, Content-Disposition and Range),
// with knobs to break it.
type exportServer struct {
	*httptest.Server
	content []byte
	name    string

	mu      sync.Mutex
	etag    string // sent as the ETag; "" sends none
	cutAt   int    // > 0: the next download stops after cutAt bytes
	state   string // job state; downloads are 404 unless "completed"
	ranges  []string
	ifRange []string
}

func newExportServer(t *testing.T, content []byte) *exportServer {
	t.Helper()
	sum := sha256.Sum256(content)
	s := &exportServer{content: content, name: "export-file.ndjson", etag: `"` + hex.EncodeToString(sum[:]) + `"`, state: "completed"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{cid}/login/token", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "client" || p != "secret" || r.FormValue("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "tok", "token_type": "Bearer", "expires_in": 3600})
	})
	authed := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux.HandleFunc("GET /{cid}/webhooks/subscriptions/{sid}/exports/{job}", func(w http.ResponseWriter, r *http.Request) {
		if authed(w, r) {
			s.mu.Lock()
			defer s.mu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]any{"id": r.PathValue("job"), "state": s.state})
		}
	})
	mux.HandleFunc("GET /{cid}/webhooks/subscriptions/{sid}/exports/{job}/download", func(w http.ResponseWriter, r *http.Request) {
		if !authed(w, r) {
			return
		}
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.ifRange = append(s.ifRange, r.Header.Get("If-Range"))
		etag, cut, state := s.etag, s.cutAt, s.state
		s.cutAt = 0
		s.mu.Unlock()
		if state != "completed" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"type":"/not-found","status":404,"title":"Not Found","details":"the export file does not exist"}`)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("Content-Disposition", `attachment; filename="`+s.name+`"`)
		if etag != "" {
			h.Set("ETag", etag)
		}
		if cut > 0 {
			h.Set("Content-Length", fmt.Sprint(len(s.content)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(s.content[:cut])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.content))
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *exportServer) set(f func(*exportServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *exportServer) requests() (ranges, ifRanges []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...), append([]string(nil), s.ifRange...)
}

// exportFile is 400 KB of NDJSON lines.
func exportFile() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 400_000; i++ {
		fmt.Fprintf(&b, `{"jti":"%s","n":%d}`+"\n", uuid.NewSHA1(uuid.Nil, []byte(fmt.Sprint(i))), i)
	}
	return b.Bytes()
}

func (s *exportServer) args(extra ...string) []string {
	return append([]string{"export", "download", "--server", s.URL,
		"--customer", uuid.NewString(), "--subscription", uuid.NewString(), "--job", uuid.NewString(),
		"--client-id", "client", "--client-secret", "secret"}, extra...)
}

func TestExportDownloadVerifiesETag(t *testing.T) {
	content := exportFile()
	s := newExportServer(t, content)
	dir := t.TempDir()
	t.Chdir(dir)

	stdout, stderr, err := cliRun(t, t.Context(), s.args()...)
	if err != nil {
		t.Fatalf("download: %v\nstderr: %s", err, stderr)
	}
	got, err := os.ReadFile(filepath.Join(dir, s.name))
	if err != nil {
		t.Fatalf("got no file named after Content-Disposition: %v", err)
	}
	if !bytes.Equal(got, content) {
		t.Errorf("got %d bytes, want the %d bytes served", len(got), len(content))
	}
	if !strings.Contains(stdout, s.etag+" verified") || !strings.Contains(stdout, fmt.Sprint(len(content))) {
		t.Errorf("got output %q, want the size and the verified ETag %s", stdout, s.etag)
	}
	if !strings.Contains(stderr, "download: ") {
		t.Errorf("got stderr %q, want progress", stderr)
	}
	if _, err := os.Stat(s.name + ".part"); !os.IsNotExist(err) {
		t.Errorf("got a .part file left (%v), want none", err)
	}

	// An existing file is kept unless --force.
	if _, _, err := cliRun(t, t.Context(), s.args()...); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("got %v downloading over an existing file, want a refusal naming --force", err)
	}
	if _, _, err := cliRun(t, t.Context(), s.args("--force")...); err != nil {
		t.Errorf("got %v with --force, want success", err)
	}
}

func TestExportDownloadRefusesWrongOrMissingETag(t *testing.T) {
	content := exportFile()
	other := sha256.Sum256([]byte("another file"))
	for _, tc := range []struct {
		name, etag, want string
	}{
		{"wrong", `"` + hex.EncodeToString(other[:]) + `"`, "does not match the ETag"},
		{"missing", "", "no strong SHA-256 ETag"},
		{"weak", `W/"` + hex.EncodeToString(other[:]) + `"`, "no strong SHA-256 ETag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newExportServer(t, content)
			s.set(func(s *exportServer) { s.etag = tc.etag })
			out := filepath.Join(t.TempDir(), "f.ndjson")
			_, _, err := cliRun(t, t.Context(), s.args("-o", out)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want %q", err, tc.want)
			}
			for _, f := range []string{out, out + ".part", out + ".part.etag"} {
				if _, err := os.Stat(f); !os.IsNotExist(err) {
					t.Errorf("got %s after a failed check (%v), want it deleted", filepath.Base(f), err)
				}
			}
		})
	}
}

func TestExportDownloadResumesWithRange(t *testing.T) {
	content := exportFile()
	s := newExportServer(t, content)
	out := filepath.Join(t.TempDir(), "failed.ndjson")

	s.set(func(s *exportServer) { s.cutAt = 150_000 })
	_, _, err := cliRun(t, t.Context(), s.args("-o", out)...)
	if err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("got error %v for a cut download, want a hint to --resume", err)
	}
	fi, err := os.Stat(out + ".part")
	if err != nil || fi.Size() == 0 || fi.Size() > 150_000 {
		t.Fatalf("got partial file %v (%v), want up to 150000 bytes kept", fi, err)
	}
	have := fi.Size()

	stdout, stderr, err := cliRun(t, t.Context(), s.args("-o", out, "--resume")...)
	if err != nil {
		t.Fatalf("resume: %v\nstderr: %s", err, stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
		t.Fatalf("got %d bytes after resuming, want the %d bytes served", len(got), len(content))
	}
	ranges, ifRanges := s.requests()
	if got, want := ranges[len(ranges)-1], fmt.Sprintf("bytes=%d-", have); got != want {
		t.Errorf("got Range %q, want %q", got, want)
	}
	if got := ifRanges[len(ifRanges)-1]; got != s.etag {
		t.Errorf("got If-Range %q, want the ETag %s", got, s.etag)
	}
	if !strings.Contains(stdout, "verified") {
		t.Errorf("got output %q, want the ETag verified", stdout)
	}
	for _, f := range []string{out + ".part", out + ".part.etag"} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("got %s after success (%v), want it gone", filepath.Base(f), err)
		}
	}
}

func TestExportDownloadResumeStartsOverWhenFileChanged(t *testing.T) {
	content := exportFile()
	s := newExportServer(t, content)
	dir := t.TempDir()
	t.Chdir(dir)
	// A partial file of another version of the file, found without -o
	// through the server's file name.
	stale := sha256.Sum256([]byte("older"))
	if err := os.WriteFile(s.name+".part", []byte("stale bytes of another file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.name+".part.etag", []byte(`"`+hex.EncodeToString(stale[:])+`"`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := cliRun(t, t.Context(), s.args("--resume")...); err != nil {
		t.Fatalf("resume: %v\nstderr: %s", err, stderr)
	}
	if got, _ := os.ReadFile(s.name); !bytes.Equal(got, content) {
		t.Fatalf("got %d bytes, want the %d bytes of the current file", len(got), len(content))
	}
	ranges, _ := s.requests()
	if len(ranges) != 2 || ranges[0] != "bytes=0-0" || ranges[1] != "bytes=28-" {
		t.Errorf("got Range headers %q, want a probe for the name, then bytes=28-", ranges)
	}
}

func TestExportDownloadExplainsMissingFile(t *testing.T) {
	s := newExportServer(t, exportFile())
	s.set(func(s *exportServer) { s.state = "processing" })
	_, _, err := cliRun(t, t.Context(), s.args("-o", filepath.Join(t.TempDir(), "x"))...)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "the job is processing") {
		t.Errorf("got %v, want the 404 and the job's state", err)
	}
	// A usage error is printed to stderr by the command; the error itself is envflag.ErrUsage.
	_, stderr, err := cliRun(t, t.Context(), "export", "download", "--server", s.URL, "--customer", uuid.NewString(),
		"--subscription", uuid.NewString(), "--job", uuid.NewString())
	if !errors.Is(err, envflag.ErrUsage) || !strings.Contains(stderr, "--client-id") {
		t.Errorf("got %v and stderr %q without credentials, want envflag.ErrUsage and a message naming --client-id", err, stderr)
	}
}

func TestSHA256ETag(t *testing.T) {
	hexSum := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`"` + hexSum + `"`, true},
		{`"` + strings.ToUpper(hexSum) + `"`, true},
		{hexSum, false},
		{`W/"` + hexSum + `"`, false},
		{`"` + hexSum[:62] + `"`, false},
		{`"` + strings.Repeat("zz", 32) + `"`, false},
	} {
		if _, ok := sha256ETag(tc.in); ok != tc.ok {
			t.Errorf("sha256ETag(%q): got %v, want %v", tc.in, ok, tc.ok)
		}
	}
}
