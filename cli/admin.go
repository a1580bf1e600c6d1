package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"hookd/envflag"
	"hookd/wire"
)

// adminClient calls a running hookd's admin API.
type adminClient struct {
	server    string
	token     string
	userAgent string
	http      *http.Client
}

// adminFlags are the flags every command that talks to a running server takes.
type adminFlags struct {
	server, token, data string
}

func (a *adminFlags) register(f *envflag.FlagSet) {
	f.String(&a.server, "server", "", "base URL of the running hookd (default: the URL recorded in <data>/hookd.url, else http://"+wire.DefaultListen+")")
	f.String(&a.token, "admin-token", "", "admin token (default: read from <data>/admin.token)")
	f.String(&a.data, "data", wire.DefaultData, "data directory of the running hookd, for the defaults above")
}

func (a *adminFlags) client(userAgent string) (*adminClient, error) {
	server := a.server
	if server == "" {
		if b, err := os.ReadFile(filepath.Join(a.data, wire.URLFile)); err == nil {
			server = strings.TrimSpace(string(b))
		} else {
			server = "http://" + wire.DefaultListen
		}
	}
	token := a.token
	if token == "" {
		b, err := os.ReadFile(filepath.Join(a.data, wire.AdminTokenFile))
		if err != nil {
			return nil, fmt.Errorf("no --admin-token given and %s is not readable: %v", filepath.Join(a.data, wire.AdminTokenFile), err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &adminClient{server: strings.TrimRight(server, "/"), token: token, userAgent: userAgent, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do sends a request and decodes a JSON answer into out (when not nil).
// Problem answers become errors with their details.
func (c *adminClient) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach hookd at %s: %w", c.server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		if p, ok := problemOf(resp, data); ok {
			return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, p.Title, p.Details)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

const clientUsage = `Usage: hookd client <create|list|revoke> --customer <uuid> [flags]

Manages the confidential API clients of a customer through a running hookd.
The secret of a new client is printed once; hookd keeps only its hash. The
customer and its signing keys are created with its first client.

Examples:
  hookd client create --customer 9bc867ed-1f10-420f-8d90-398fde4e4779
  hookd client create --customer 9bc867ed-1f10-420f-8d90-398fde4e4779 --json
  hookd client list   --customer 9bc867ed-1f10-420f-8d90-398fde4e4779
  hookd client revoke --customer 9bc867ed-1f10-420f-8d90-398fde4e4779 --client <client id>
`

func runClient(ctx context.Context, ua string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if isHelp(args) {
		fmt.Fprint(stderr, clientUsage)
		return nil
	}
	if len(args) == 0 || (args[0] != "create" && args[0] != "list" && args[0] != "revoke") {
		return subcommandErr(stderr, "client", args, "create, list or revoke")
	}
	sub, rest := args[0], args[1:]
	var a adminFlags
	var customer, clientID string
	var asJSON bool
	f := envflag.New("client "+sub, stderr, clientUsage)
	a.register(f)
	f.String(&customer, "customer", "", "customer id (a UUID)")
	if sub == "revoke" {
		f.String(&clientID, "client", "", "client id to revoke")
	}
	f.Bool(&asJSON, "json", false, "print JSON")
	cid, c, err := parseCustomerCommand(f, ua, rest, getenv, stderr, &a, &customer)
	if err != nil || c == nil {
		return err
	}
	var revoked uuid.UUID
	if sub == "revoke" {
		if revoked, err = uuidFlag(stderr, f.Name(), "client", clientID); err != nil {
			return err
		}
	}
	base := "/admin/customers/" + cid.String() + "/clients"
	switch sub {
	case "create":
		var out wire.Client
		if err := c.do(ctx, http.MethodPost, base, nil, &out); err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(stdout).Encode(out)
		}
		fmt.Fprintf(stdout, "customer id:   %s\nclient id:     %s\nclient secret: %s\n\nThe secret is shown only now; store it safely.\n", out.CustomerID, out.ClientID, out.ClientSecret)
		return nil
	case "list":
		var out wire.ClientList
		if err := c.do(ctx, http.MethodGet, base, nil, &out); err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(stdout).Encode(out)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT ID\tCREATED")
		for _, cl := range out.Clients {
			fmt.Fprintf(tw, "%s\t%s\n", cl.ClientID, cl.CreatedAt)
		}
		return tw.Flush()
	case "revoke":
		if err := c.do(ctx, http.MethodDelete, base+"/"+revoked.String(), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked client %s and its tokens\n", revoked)
	}
	return nil
}

const keysUsage = `Usage: hookd keys rotate --customer <uuid> [flags]

Rotates a customer's signing keys of every algorithm (RS256, ES256, EdDSA)
through a running hookd: each next key starts signing, each current one
becomes the previous, the old previous ones are retired and new next keys
are published in the JWKS.

Example:
  hookd keys rotate --customer 9bc867ed-1f10-420f-8d90-398fde4e4779
`

func runKeys(ctx context.Context, ua string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if isHelp(args) {
		fmt.Fprint(stderr, keysUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "rotate" {
		return subcommandErr(stderr, "keys", args, "rotate (hookd keys rotate --customer <uuid>)")
	}
	var a adminFlags
	var customer string
	f := envflag.New("keys rotate", stderr, keysUsage)
	a.register(f)
	f.String(&customer, "customer", "", "customer id (a UUID)")
	cid, c, err := parseCustomerCommand(f, ua, args[1:], getenv, stderr, &a, &customer)
	if err != nil || c == nil {
		return err
	}
	var out wire.KeyRotation
	if err := c.do(ctx, http.MethodPost, "/admin/customers/"+cid.String()+"/keys/rotate", nil, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rotated keys of customer %s\n  signing: %s\n  previous: %s\n  next: %s\n", cid, out.Current, out.Previous, out.Next)
	for _, t := range out.Algorithms {
		fmt.Fprintf(stdout, "  %s: signing %s, previous %s, next %s\n", t.Alg, t.Current, t.Previous, t.Next)
	}
	return nil
}

// parseCustomerCommand parses the flags of a command that acts on one
// customer through a running hookd and returns the customer id and the
// admin client. After --help it returns a nil client and no error; a
// usage error is printed on stderr.
func parseCustomerCommand(f *envflag.FlagSet, ua string, args []string, getenv func(string) string, stderr io.Writer, a *adminFlags, customer *string) (uuid.UUID, *adminClient, error) {
	if err := f.Parse(args, getenv); err != nil {
		return uuid.UUID{}, nil, parseErr(stderr, f.Name(), err)
	}
	if f.NArg() > 0 {
		return uuid.UUID{}, nil, usageErr(stderr, f.Name(), "no arguments expected, got %q", f.Args())
	}
	cid, err := uuidFlag(stderr, f.Name(), "customer", *customer)
	if err != nil {
		return uuid.UUID{}, nil, err
	}
	c, err := a.client(ua)
	if err != nil {
		return uuid.UUID{}, nil, err
	}
	return cid, c, nil
}

// problemOf decodes an error answer's problem; ok is false when the body
// is not one.
func problemOf(resp *http.Response, body []byte) (p wire.Problem, ok bool) {
	if json.Unmarshal(body, &p) != nil || p.Title == "" {
		return wire.Problem{}, false
	}
	p.Status = resp.StatusCode
	return p, true
}

// problemText renders an error answer: its problem with the parameter
// names as name renders them (nil: as sent), else the HTTP status.
func problemText(resp *http.Response, body []byte, name func(wire.ParamError) string) string {
	p, ok := problemOf(resp, body)
	if !ok {
		return resp.Status
	}
	return p.Text(name)
}

// responseError turns an unexpected answer into an error with the
// server's problem when there is one.
func responseError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return fmt.Errorf("%s %s: %s", resp.Request.Method, resp.Request.URL.Path, problemText(resp, body, nil))
}
