package e2e

// End-to-end tests of the operator's side: the admin API, the admin token
// file, the demo client of --dev, health checks and the data file.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"hookd/serve"
)

// clientView is a client as the admin API shows it.
type clientView struct {
	CustomerID   string `json:"customerId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	CreatedAt    string `json:"createdAt"`
}

func TestAdminAPI(t *testing.T) {
	h := startHookd(t, "")
	cust := uuid.New()
	clients := "/admin/customers/" + cust.String() + "/clients"

	t.Run("admin token required", func(t *testing.T) {
		tests := []struct {
			name, method, path, auth string
			want                     int
		}{
			{"no header", http.MethodPost, clients, "", http.StatusUnauthorized},
			{"malformed", http.MethodGet, clients, "Token " + h.AdminToken, http.StatusUnauthorized},
			{"wrong token", http.MethodPost, clients, "Bearer " + strings.Repeat("a", 43), http.StatusForbidden},
			{"wrong token on list", http.MethodGet, clients, "Bearer nope", http.StatusForbidden},
			{"wrong token on revoke", http.MethodDelete, clients + "/" + uuid.NewString(), "Bearer nope", http.StatusForbidden},
			{"wrong token on rotate", http.MethodPost, "/admin/customers/" + cust.String() + "/keys/rotate", "Bearer nope", http.StatusForbidden},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var hdr []string
				if tc.auth != "" {
					hdr = []string{"Authorization", tc.auth}
				}
				resp, data := h.call(tc.method, tc.path, "", nil, hdr...)
				readProblem(t, resp, data, tc.want)
			})
		}
		// A customer's access token is not an admin token.
		demo := demoClient(t, h)
		tok := h.token(demo.Customer, demo.ClientID, demo.Secret)
		resp, data := h.call(http.MethodPost, clients, tok, nil)
		readProblem(t, resp, data, http.StatusForbidden)
		if got, _ := h.call(http.MethodGet, clients, h.AdminToken, nil); got.StatusCode != http.StatusOK {
			t.Fatalf("got %d with the right token, want 200", got.StatusCode)
		}
	})

	var first, second clientView
	t.Run("create", func(t *testing.T) {
		resp, data := h.call(http.MethodPost, clients, h.AdminToken, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("got %d, want 201; body %s", resp.StatusCode, data)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("got Cache-Control %q, want no-store", cc)
		}
		h.mustCall(http.StatusCreated, http.MethodPost, clients, h.AdminToken, nil, &second)
		first = decodeClient(t, data)
		for _, c := range []clientView{first, second} {
			if c.CustomerID != cust.String() || c.ClientSecret == "" || len(c.ClientSecret) < 40 {
				t.Errorf("got %+v, want the customer id and a long secret", c)
			}
			if _, err := uuid.Parse(c.ClientID); err != nil {
				t.Errorf("got client id %q, want a UUID", c.ClientID)
			}
		}
		if first.ClientID == second.ClientID || first.ClientSecret == second.ClientSecret {
			t.Error("got two clients with the same id or secret, want fresh ones")
		}
		// The customer came with its keys.
		if doc := fetchJWKS(t, h, cust); len(doc.Keys) != 9 {
			t.Errorf("got %d keys, want 9 (three of each algorithm)", len(doc.Keys))
		}
		resp, data = h.call(http.MethodPost, "/admin/customers/not-a-uuid/clients", h.AdminToken, nil)
		readProblem(t, resp, data, http.StatusNotFound)
	})

	t.Run("list shows no secrets", func(t *testing.T) {
		var l struct {
			Total   int          `json:"total"`
			Clients []clientView `json:"clients"`
		}
		data := h.mustCall(http.StatusOK, http.MethodGet, clients, h.AdminToken, nil, &l)
		if l.Total != 2 || len(l.Clients) != 2 || l.Clients[0].ClientID != first.ClientID || l.Clients[1].ClientID != second.ClientID {
			t.Errorf("got %+v, want the two clients, oldest first", l)
		}
		for _, s := range []string{first.ClientSecret, second.ClientSecret, "clientSecret", "secretHash"} {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("got %q in the list, want no secrets", s)
			}
		}
		data = h.mustCall(http.StatusOK, http.MethodGet, "/admin/customers/"+uuid.NewString()+"/clients", h.AdminToken, nil, &l)
		if l.Total != 0 || !bytes.Contains(data, []byte(`"clients":[]`)) {
			t.Errorf("unknown customer: got %s, want an empty list", data)
		}
	})

	t.Run("secrets and tokens stored as hashes", func(t *testing.T) {
		tok := h.token(cust, first.ClientID, first.ClientSecret)
		raw := storeBytes(t, h.Data)
		for name, s := range map[string]string{"client secret": first.ClientSecret, "access token": tok, "admin token": h.AdminToken} {
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("got the %s in the store, want only a hash", name)
			}
		}
	})

	t.Run("revoke", func(t *testing.T) {
		tok := h.token(cust, first.ClientID, first.ClientSecret)
		tn := tenant{Customer: cust}
		h.mustCall(http.StatusOK, http.MethodGet, tn.path("/webhooks/subscriptions"), tok, nil, nil)
		// Through another customer: 404, nothing revoked.
		resp, data := h.call(http.MethodDelete, "/admin/customers/"+uuid.NewString()+"/clients/"+first.ClientID, h.AdminToken, nil)
		readProblem(t, resp, data, http.StatusNotFound)
		h.mustCall(http.StatusOK, http.MethodGet, tn.path("/webhooks/subscriptions"), tok, nil, nil)

		resp, data = h.call(http.MethodDelete, clients+"/"+first.ClientID, h.AdminToken, nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("revoke: got %d %s, want 204", resp.StatusCode, data)
		}
		resp, data = h.call(http.MethodGet, tn.path("/webhooks/subscriptions"), tok, nil)
		readProblem(t, resp, data, http.StatusForbidden)
		resp, data = tokenRequest(t, h, cust.String(), first.ClientID, first.ClientSecret, goodForm, false)
		readProblem(t, resp, data, http.StatusUnauthorized)
		// The other client is untouched.
		h.token(cust, second.ClientID, second.ClientSecret)
		resp, data = h.call(http.MethodDelete, clients+"/"+first.ClientID, h.AdminToken, nil)
		readProblem(t, resp, data, http.StatusNotFound)
		resp, data = h.call(http.MethodDelete, clients+"/nope", h.AdminToken, nil)
		readProblem(t, resp, data, http.StatusNotFound)
	})
}

func decodeClient(t *testing.T, data []byte) clientView {
	t.Helper()
	var c clientView
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("decode client %s: %v", data, err)
	}
	return c
}

func TestHealthAndShutdown(t *testing.T) {
	h := startHookd(t, "")
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, data := h.call(http.MethodGet, p, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d %s, want 200", p, resp.StatusCode, data)
		}
	}
	resp, data := h.call(http.MethodGet, "/no/such/thing/here/at/all", "", nil)
	readProblem(t, resp, data, http.StatusNotFound)

	if err := h.Stop(); err != nil {
		t.Fatalf("shutdown: got %v, want nil", err)
	}
	if _, err := os.Stat(filepath.Join(h.Data, urlFile)); !os.IsNotExist(err) {
		t.Errorf("got %s after shutdown (err %v), want it removed", urlFile, err)
	}
	if _, err := http.Get(h.URL + "/healthz"); err == nil {
		t.Error("got an answer after shutdown, want the listener closed")
	}
}

func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	h := startHookd(t, dir)
	path := filepath.Join(dir, adminTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("got admin.token mode %o, want 600", mode)
	}
	if len(h.AdminToken) < 32 {
		t.Errorf("got admin token of %d characters, want a long random one", len(h.AdminToken))
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	h2 := startHookd(t, dir)
	if h2.AdminToken != h.AdminToken {
		t.Error("got a new admin token at restart, want the kept one")
	}
	h2.mustCall(http.StatusOK, http.MethodGet, "/admin/customers/"+uuid.NewString()+"/clients", h.AdminToken, nil, nil)
}

// TestAdminTokenFlagAndConfigLog starts hookd with --admin-token at log
// level info: the token works, no file is written, and the logged
// configuration does not show it.
func TestAdminTokenFlagAndConfigLog(t *testing.T) {
	const token = "flag-admin-token-0123456789abcdef"
	h := startHookdNoDev(t, "", "--admin-token", token, "--log-level", "info", "--blob-url", "mem://")
	h.mustCall(http.StatusOK, http.MethodGet, "/admin/customers/"+uuid.NewString()+"/clients", token, nil, nil)
	if _, err := os.Stat(filepath.Join(h.Data, adminTokenFile)); !os.IsNotExist(err) {
		t.Errorf("got %s written (err %v), want none when --admin-token is given", adminTokenFile, err)
	}
	logs := h.Stderr.String()
	if strings.Contains(logs, token) {
		t.Error("got the admin token in the log, want it redacted")
	}
	for _, want := range []string{`"starting hookd"`, `"adminToken":"REDACTED"`, `"listen":"127.0.0.1:0"`, `"blobUrl":"mem://"`, `"dev":"false"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("got log %s, want it to contain %s", logs, want)
		}
	}
	if out := h.Stdout.String(); strings.Contains(out, "demo") {
		t.Errorf("got %q on stdout without --dev, want no demo client", out)
	}
}

// TestCollectorDefaults: the hookd binary, with nothing in its environment
// but PATH and HOME, sets Go's garbage collector to hookd's defaults and
// says so in the log.
func TestCollectorDefaults(t *testing.T) {
	h := startProcess(t, t.TempDir(), "--log-level", "info")
	logs := h.Stderr.String()
	for _, want := range []string{`"message":"garbage collector set"`, `"setByEnvironment":[]`,
		`"gcPercent":` + strconv.Itoa(serve.DefaultGCPercent), `"memoryLimit":` + strconv.Itoa(serve.DefaultMemoryLimit)} {
		if !strings.Contains(logs, want) {
			t.Errorf("got log %s, want it to contain %s", logs, want)
		}
	}
}

func TestDevBootstrap(t *testing.T) {
	h := startHookd(t, "")
	demo := demoClient(t, h)
	out := h.Stdout.String()
	m := demoCurlRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("got stdout %q, want a curl line to get a token", out)
	}
	if m[1] != demo.ClientID+":"+demo.Secret {
		t.Errorf("got curl credentials %q, want the printed client id and secret", m[1])
	}
	tokenURL := h.URL + "/" + demo.Customer.String() + "/login/token"
	if m[4] != tokenURL {
		t.Errorf("got curl URL %q, want %q", m[4], tokenURL)
	}
	// The printed request, made as curl makes it, gives a working token.
	form := url.Values{}
	for _, kv := range []string{m[2], m[3]} {
		k, v, _ := strings.Cut(kv, "=")
		form.Set(k, v)
	}
	resp, data := tokenRequest(t, h, demo.Customer.String(), demo.ClientID, demo.Secret, form, false)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the printed token request: got %d %s, want 200", resp.StatusCode, data)
	}
	// And with curl itself when it is installed.
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Log("curl is not installed; the printed line was checked without it")
		return
	}
	line := strings.Join(strings.Fields(strings.ReplaceAll(m[0], "\\", "")), " ")
	line = strings.Replace(line, "curl", curl, 1)
	cmd := exec.CommandContext(context.Background(), "bash", "-c", line)
	got, err := cmd.Output()
	if err != nil || !bytes.Contains(got, []byte(`"access_token"`)) {
		t.Fatalf("running %q: got %s, %v; want a token", line, got, err)
	}
}
