package e2e

// The end-to-end harness: hookd started in-process through run() on a free
// loopback port, or as a real child process (for tests that kill it), with
// helpers to create clients, get tokens and call the API.
//
// run is the program main runs: the same cli.Program, and a serve command
// that reads the config and opens, runs and closes a serve.Main as main's
// runServe does.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/cli"
	"hookd/config"
	"hookd/envflag"
	"hookd/serve"
	"hookd/wire"
)

// version is the version the in-process hookd reports.
const version = "dev"

// Names of the program's files and errors, as the tests use them.
const (
	urlFile        = wire.URLFile
	adminTokenFile = wire.AdminTokenFile
)

var errUsage = envflag.ErrUsage

// run runs one hookd command line in-process, as main does.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return cli.Program{Version: version, Serve: runServe}.Run(ctx, args, getenv, stdout, stderr)
}

// runServe is main's hookd serve: config, then open, run and close.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.ParseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	m := serve.New(cfg, serve.Options{Version: version, Stdout: stdout, Stderr: stderr, Getenv: getenv})
	if err = m.Open(ctx); err == nil {
		err = m.Run(ctx)
	}
	return errors.Join(err, m.Close())
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hookd is a running hookd under test.
type hookd struct {
	t          *testing.T
	URL        string
	Data       string
	AdminToken string
	Stdout     *syncBuffer
	Stderr     *syncBuffer
	stop       func() error
	proc       *exec.Cmd // set for child processes
}

// startHookd runs `hookd serve --dev` in-process on a free port with data
// in dir (a new temporary directory when empty) and the extra args. It is
// stopped at the end of the test.
func startHookd(t *testing.T, dir string, args ...string) *hookd {
	t.Helper()
	return startServe(t, dir, true, args...)
}

// startHookdNoDev is startHookd without --dev: listener endpoints must be
// https URLs of public addresses.
func startHookdNoDev(t *testing.T, dir string, args ...string) *hookd {
	t.Helper()
	return startServe(t, dir, false, args...)
}

// startServe runs hookd serve in-process, with --dev when dev. An
// --admin-token among args is used as the harness's admin token.
func startServe(t *testing.T, dir string, dev bool, args ...string) *hookd {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	h := &hookd{t: t, Data: dir, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}}
	for i, a := range args {
		if a == "--admin-token" && i+1 < len(args) {
			h.AdminToken = args[i+1]
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	all := []string{"serve", "--listen", "127.0.0.1:0", "--data", dir, "--log-format", "json", "--log-level", "warn"}
	if !hasFlag(args, "--store") {
		all = append(all, storeFlags(t, dir)...)
	}
	if dev {
		all = append(all, "--dev")
	}
	all = append(all, args...)
	noEnv := func(string) string { return "" }
	go func() { done <- run(ctx, all, noEnv, h.Stdout, h.Stderr) }()
	var once sync.Once
	var stopErr error
	h.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("hookd did not stop within 30s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("stop hookd: %v", err)
		}
	})
	h.waitReady(done)
	return h
}

// hasFlag reports whether args name flag.
func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// waitReady waits for the URL file and /readyz.
func (h *hookd) waitReady(exited chan error) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err // for the stop that the test's end runs
			h.t.Fatalf("hookd exited during start: %v\nstderr:\n%s", err, h.Stderr.String())
		default:
		}
		if b, err := os.ReadFile(filepath.Join(h.Data, urlFile)); err == nil && len(b) > 0 {
			h.URL = strings.TrimSpace(string(b))
			if resp, err := http.Get(h.URL + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					if h.AdminToken != "" {
						return
					}
					tok, err := os.ReadFile(filepath.Join(h.Data, adminTokenFile))
					if err != nil {
						h.t.Fatalf("read admin token: %v", err)
					}
					h.AdminToken = strings.TrimSpace(string(tok))
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("hookd was not ready within 20s\nstderr:\n%s", h.Stderr.String())
}

// Stop shuts hookd down gracefully and reports run's error.
func (h *hookd) Stop() error { return h.stop() }

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// hookdBinary builds the hookd binary once per test run.
func hookdBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hookd-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "hookd")
		// The main package is the module's root, hookd.
		out, err := exec.Command("go", "build", "-o", binaryPath, "hookd").CombinedOutput()
		if err != nil {
			binaryErr = errors.New(string(out))
		}
	})
	if binaryErr != nil {
		t.Fatalf("build hookd: %v", binaryErr)
	}
	return binaryPath
}

// startProcess runs hookd serve --dev as a child process on a free port
// with data in dir. Kill stops it with SIGKILL; the test's end stops it too.
func startProcess(t *testing.T, dir string, args ...string) *hookd {
	t.Helper()
	bin := hookdBinary(t)
	h := &hookd{t: t, Data: dir, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}}
	all := []string{"serve", "--dev", "--listen", "127.0.0.1:0", "--data", dir, "--log-format", "json", "--log-level", "warn"}
	if !hasFlag(args, "--store") {
		all = append(all, storeFlags(t, dir)...)
	}
	all = append(all, args...)
	cmd := exec.Command(bin, all...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	cmd.Stdout, cmd.Stderr = h.Stdout, h.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hookd: %v", err)
	}
	h.proc = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	h.stop = func() error {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		return nil
	}
	t.Cleanup(func() { _ = h.stop() })
	h.waitReady(exited)
	return h
}

// Kill ends a child process with SIGKILL and waits for it.
func (h *hookd) Kill() {
	h.t.Helper()
	if h.proc == nil {
		h.t.Fatal("Kill needs a process started with startProcess")
	}
	_ = h.stop()
}

// call sends a request with an optional bearer token and JSON body (a
// string or []byte is sent as is) and returns the response with its body read.
func (h *hookd) call(method, path, token string, body any, header ...string) (*http.Response, []byte) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, data
}

// mustCall is call that fails the test unless the status is want, and
// decodes a JSON answer into out when out is not nil.
func (h *hookd) mustCall(want int, method, path, token string, body, out any) []byte {
	h.t.Helper()
	resp, data := h.call(method, path, token, body)
	if resp.StatusCode != want {
		h.t.Fatalf("%s %s: got status %d, want %d; body: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return data
}

// tenant is a customer with one client and a token.
type tenant struct {
	Customer uuid.UUID
	ClientID string
	Secret   string
	Token    string
}

// newTenant creates a customer with a client through the admin API and gets a token.
func (h *hookd) newTenant() tenant {
	h.t.Helper()
	tn := tenant{Customer: uuid.New()}
	var cl struct{ ClientID, ClientSecret string }
	h.mustCall(http.StatusCreated, http.MethodPost, "/admin/customers/"+tn.Customer.String()+"/clients", h.AdminToken, nil, &cl)
	tn.ClientID, tn.Secret = cl.ClientID, cl.ClientSecret
	tn.Token = h.token(tn.Customer, tn.ClientID, tn.Secret)
	return tn
}

// token gets an access token with the client credentials grant.
func (h *hookd) token(customer uuid.UUID, clientID, secret string) string {
	h.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"*:webhooks/**"}}
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/"+customer.String()+"/login/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&tok) != nil || tok.AccessToken == "" {
		h.t.Fatalf("token: got status %d", resp.StatusCode)
	}
	return tok.AccessToken
}

// path returns the customer's API path for p ("/webhooks/...").
func (tn tenant) path(p string) string { return "/" + tn.Customer.String() + p }
