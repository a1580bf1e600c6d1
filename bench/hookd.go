package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// buildHookd compiles hookd from the module at root into dir and returns
// the binary's path.
func buildHookd(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "hookd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot returns the directory of hookd's go.mod, searched upwards
// from the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module hookd")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of module hookd above the working directory; run the harness from the repository")
		}
		dir = parent
	}
}

// server is a running hookd child process.
type server struct {
	URL        string
	Data       string
	AdminToken string
	PID        int
	cmd        *exec.Cmd
	exited     chan error
	log        *os.File
	http       *http.Client
}

// startServer runs `hookd serve --dev` on a free loopback port with its
// data in dataDir and the extra flags, and waits until /readyz answers.
// hookd's own log goes to <dataDir>.log.
func startServer(ctx context.Context, bin, dataDir string, hc *http.Client, extra ...string) (*server, error) {
	return startServerWait(ctx, readyWait, bin, dataDir, hc, extra...)
}

// readyWait is how long startServer waits for a fresh hookd to be ready.
const readyWait = 60 * time.Second

// startServerWait is startServer waiting up to wait for hookd to be ready
// (a large store takes longer to open).
func startServerWait(ctx context.Context, wait time.Duration, bin, dataDir string, hc *http.Client, extra ...string) (*server, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(dataDir, "hookd.url"))
	logf, err := os.OpenFile(dataDir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--dev", "--listen", "127.0.0.1:0", "--data", dataDir,
		"--log-format", "json", "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start hookd: %w", err)
	}
	s := &server{Data: dataDir, PID: cmd.Process.Pid, cmd: cmd, exited: make(chan error, 1), log: logf, http: hc}
	go func() { s.exited <- cmd.Wait() }()
	if err := s.waitReady(ctx, wait); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

func (s *server) waitReady(ctx context.Context, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("hookd exited during start: %v (log: %s.log)", err, s.Data)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		b, err := os.ReadFile(filepath.Join(s.Data, "hookd.url"))
		if err != nil || len(b) == 0 {
			continue
		}
		s.URL = strings.TrimSpace(string(b))
		resp, err := s.http.Get(s.URL + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		tok, err := os.ReadFile(filepath.Join(s.Data, "admin.token"))
		if err != nil {
			return fmt.Errorf("read admin token: %w", err)
		}
		s.AdminToken = strings.TrimSpace(string(tok))
		return nil
	}
	return fmt.Errorf("hookd was not ready within %v (log: %s.log)", wait, s.Data)
}

// stop shuts hookd down with SIGTERM (its graceful shutdown) and kills it
// when it has not exited after 30 seconds.
func (s *server) stop() error {
	defer s.log.Close()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			return fmt.Errorf("hookd exited with %v (log: %s.log)", err, s.Data)
		}
		return nil
	case <-time.After(30 * time.Second):
		s.kill()
		return errors.New("hookd did not stop within 30s of SIGTERM; killed")
	}
}

// pause stops the hookd process (SIGSTOP) until resume; the harness uses
// the pause to measure the machine's signing rate between deliveries.
func (s *server) pause() error { return s.cmd.Process.Signal(syscall.SIGSTOP) }

// resume continues a paused hookd (SIGCONT); it is harmless on a running one.
func (s *server) resume() error { return s.cmd.Process.Signal(syscall.SIGCONT) }

func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
}

// call sends a JSON request (body marshalled unless it is []byte) with the
// bearer token and decodes a JSON answer into out. A status other than
// want is an error.
func (s *server) call(ctx context.Context, method, path, token string, body any, want int, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: got status %d, want %d: %s", method, path, resp.StatusCode, want, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// tenant is a customer with an access token.
type tenant struct {
	Customer string
	Token    string
}

func (t tenant) path(p string) string { return "/" + t.Customer + p }

// newTenant creates customer cid with a client through the admin API and
// gets an access token for it.
func (s *server) newTenant(ctx context.Context, cid string) (tenant, error) {
	var cl struct {
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
	}
	if err := s.call(ctx, http.MethodPost, "/admin/customers/"+cid+"/clients", s.AdminToken, nil, http.StatusCreated, &cl); err != nil {
		return tenant{}, err
	}
	return s.login(ctx, cid, cl.ClientID, cl.ClientSecret)
}

// login gets an access token for customer cid with the client credentials
// grant.
func (s *server) login(ctx context.Context, cid, clientID, secret string) (tenant, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"*:webhooks/**"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/"+cid+"/login/token", strings.NewReader(form.Encode()))
	if err != nil {
		return tenant{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := s.http.Do(req)
	if err != nil {
		return tenant{}, err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&tok) != nil || tok.AccessToken == "" {
		return tenant{}, fmt.Errorf("token for customer %s: got status %d", cid, resp.StatusCode)
	}
	return tenant{Customer: cid, Token: tok.AccessToken}, nil
}

// subscriptionSpec describes a subscription to create.
type subscriptionSpec struct {
	Title    string          `json:"title"`
	Endpoint string          `json:"endpoint"`
	Events   []string        `json:"events"`
	Enabled  bool            `json:"enabled"`
	Filter   json.RawMessage `json:"filter,omitempty"`
	// Signing chooses the algorithm; nil is hookd's default, RS256.
	Signing *signingSpec `json:"signing,omitempty"`
}

// signingSpec is a subscription's "signing" member.
type signingSpec struct {
	Alg string `json:"alg"`
}

// createSubscription creates a subscription and returns its id.
func (s *server) createSubscription(ctx context.Context, tn tenant, spec subscriptionSpec) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if err := s.call(ctx, http.MethodPost, tn.path("/webhooks/subscriptions"), tn.Token, spec, http.StatusCreated, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// intakeAnswer is the part of the intake's 202 answer the harness reads.
type intakeAnswer struct {
	Accepted int `json:"accepted"`
	Recorded int `json:"recorded"`
}

// postEvents sends one intake request (NDJSON when ndjson) and returns the
// number of events hookd accepted.
func (s *server) postEvents(ctx context.Context, customer string, body []byte, ndjson bool) (intakeAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/"+customer+"/webhooks/events", bytes.NewReader(body))
	if err != nil {
		return intakeAnswer{}, err
	}
	if ndjson {
		req.Header.Set("Content-Type", "application/x-ndjson")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	resp, err := s.http.Do(req)
	if err != nil {
		return intakeAnswer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return intakeAnswer{}, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return intakeAnswer{}, fmt.Errorf("intake: got status %d, want 202: %.300s", resp.StatusCode, data)
	}
	var a intakeAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return intakeAnswer{}, fmt.Errorf("intake: decode answer: %w", err)
	}
	return a, nil
}

// newHTTPClient returns the harness's client: no proxy, no transparent
// decompression, enough idle connections for the concurrent phases.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

// fetchProfile takes a CPU profile of secs seconds through hookd's
// /debug/pprof/profile (admin token) and writes it to path.
func (s *server) fetchProfile(ctx context.Context, secs int, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.URL, secs), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: got status %d: %.300s", resp.StatusCode, data)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
