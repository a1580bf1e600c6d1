package e2e

// End-to-end tests of the CLI commands that call a running hookd.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// runCLI runs hookd with args and the environment env, and returns its
// error and output.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestCLIClients(t *testing.T) {
	h := startHookd(t, "")
	cust := uuid.NewString()
	remote := []string{"--server", h.URL, "--admin-token", h.AdminToken}

	// create, printed for people.
	out, errOut, err := runCLI(t, nil, append([]string{"client", "create", "--customer", cust}, remote...)...)
	if err != nil {
		t.Fatalf("client create: %v; stderr %s", err, errOut)
	}
	m := regexp.MustCompile(`customer id:\s+(\S+)\nclient id:\s+(\S+)\nclient secret:\s+(\S+)`).FindStringSubmatch(out)
	if m == nil || m[1] != cust {
		t.Fatalf("got output %q, want the customer id, client id and secret", out)
	}
	first := tenant{Customer: uuid.MustParse(cust), ClientID: m[2], Secret: m[3]}
	first.Token = h.token(first.Customer, first.ClientID, first.Secret)

	// create --json, with the server and token found through --data.
	out, errOut, err = runCLI(t, nil, "client", "create", "--customer", cust, "--json", "--data", h.Data)
	if err != nil {
		t.Fatalf("client create --json: %v; stderr %s", err, errOut)
	}
	var created struct {
		CustomerID   string `json:"customerId"`
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.CustomerID != cust || created.ClientID == "" || created.ClientSecret == "" {
		t.Fatalf("got %q (%v), want JSON with customerId, clientId and clientSecret", out, err)
	}
	h.token(first.Customer, created.ClientID, created.ClientSecret)

	// list, through the environment.
	env := map[string]string{"HOOKD_SERVER": h.URL, "HOOKD_ADMIN_TOKEN": h.AdminToken}
	out, errOut, err = runCLI(t, env, "client", "list", "--customer", cust)
	if err != nil {
		t.Fatalf("client list: %v; stderr %s", err, errOut)
	}
	if !strings.Contains(out, "CLIENT ID") || !strings.Contains(out, first.ClientID) || !strings.Contains(out, created.ClientID) {
		t.Errorf("got list %q, want a header and both clients", out)
	}
	if strings.Contains(out, first.Secret) || strings.Contains(out, created.ClientSecret) {
		t.Error("got a secret in the list, want none")
	}
	out, _, err = runCLI(t, env, "client", "list", "--customer", cust, "--json")
	var listed struct {
		Clients []struct {
			ClientID string `json:"clientId"`
		} `json:"clients"`
	}
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Clients) != 2 {
		t.Errorf("client list --json: got %q, %v; want two clients", out, err)
	}

	// revoke.
	out, errOut, err = runCLI(t, nil, append([]string{"client", "revoke", "--customer", cust, "--client", first.ClientID}, remote...)...)
	if err != nil || !strings.Contains(out, "revoked client "+first.ClientID) {
		t.Fatalf("client revoke: got %q, %v (stderr %s); want the client named", out, err, errOut)
	}
	resp, data := h.call(http.MethodGet, first.path("/webhooks/subscriptions"), first.Token, nil)
	readProblem(t, resp, data, http.StatusForbidden)
	out, _, _ = runCLI(t, env, "client", "list", "--customer", cust)
	if strings.Contains(out, first.ClientID) {
		t.Errorf("got %q after revoke, want the client gone", out)
	}

	// Failures are clear.
	failures := []struct {
		name      string
		args      []string
		usage     bool   // errUsage expected
		wantInErr string // in the error text
	}{
		{"revoke again", append([]string{"client", "revoke", "--customer", cust, "--client", first.ClientID}, remote...), false, "404"},
		{"no customer", append([]string{"client", "create"}, remote...), true, "--customer"},
		{"customer not a uuid", append([]string{"client", "list", "--customer", "acme"}, remote...), true, "--customer must be a UUID"},
		{"revoke without client", append([]string{"client", "revoke", "--customer", cust}, remote...), true, "--client"},
		{"unknown subcommand", []string{"client", "rename", "--customer", cust}, true, `unknown subcommand "rename"`},
		{"unknown flag", []string{"client", "list", "--customre", cust}, true, "customre"},
		{"wrong admin token", []string{"client", "list", "--customer", cust, "--server", h.URL, "--admin-token", "wrong-token-0123456789"}, false, "403"},
		{"server not running", []string{"client", "list", "--customer", cust, "--server", "http://127.0.0.1:1", "--admin-token", "x"}, false, "cannot reach hookd"},
		{"no admin token file", []string{"client", "list", "--customer", cust, "--data", t.TempDir()}, false, "admin.token"},
		{"keys without rotate", []string{"keys"}, true, ""},
		{"keys rotate without customer", append([]string{"keys", "rotate"}, remote...), true, "--customer"},
		{"keys rotate unknown customer", append([]string{"keys", "rotate", "--customer", uuid.NewString()}, remote...), false, "404"},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, err := runCLI(t, nil, tc.args...)
			if err == nil {
				t.Fatal("got nil error, want a failure")
			}
			if got := errors.Is(err, errUsage); got != tc.usage {
				t.Errorf("got usage error %v (%v), want %v", got, err, tc.usage)
			}
			if !strings.Contains(err.Error()+errOut, tc.wantInErr) {
				t.Errorf("got error %q and stderr %q, want %q in them", err, errOut, tc.wantInErr)
			}
		})
	}
}

func TestCLITopLevel(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    error
		wantStdout string
		wantStderr string
	}{
		{"no command", nil, errUsage, "", "Commands:"},
		{"help", []string{"help"}, nil, "Commands:", ""},
		{"--help", []string{"--help"}, nil, "serve", ""},
		{"version", []string{"version"}, nil, "hookd ", ""},
		{"unknown command", []string{"frobnicate"}, errUsage, "", `unknown command "frobnicate"`},
		{"client help", []string{"client", "--help"}, nil, "", "hookd client create --customer"},
		{"client create help", []string{"client", "create", "--help"}, nil, "", "--customer"},
		{"keys help", []string{"keys", "--help"}, nil, "", "hookd keys rotate --customer"},
		{"serve help", []string{"serve", "--help"}, nil, "", "--listen"},
		{"serve argument", []string{"serve", "now"}, errUsage, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runCLI(t, nil, tc.args...)
			if !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(out, tc.wantStdout) {
				t.Errorf("got stdout %q, want %q in it", out, tc.wantStdout)
			}
			if !strings.Contains(errOut, tc.wantStderr) {
				t.Errorf("got stderr %q, want %q in it", errOut, tc.wantStderr)
			}
		})
	}
}
