package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestTokenFormCredentials: the token endpoint takes the client's
// credentials in the form as well as with HTTP Basic. A refusal of form
// credentials is 401 without a Basic challenge (a browser would answer one
// with its own login box); a refusal of Basic credentials keeps it.
func TestTokenFormCredentials(t *testing.T) {
	db, cust, _ := testTenant(t)
	clients, err := db.Clients(cust)
	if err != nil || len(clients) != 1 {
		t.Fatalf("clients: got %v, %v; want one", clients, err)
	}
	clientID := clients[0].ID.String()
	srv := httptest.NewServer(New(Options{DB: db}))
	defer srv.Close()

	tests := []struct {
		name          string
		form          url.Values
		basicUser     string
		basicPass     string
		want          int
		wantChallenge string
	}{
		{"form credentials", url.Values{"client_id": {clientID}, "client_secret": {"secret"}}, "", "", http.StatusOK, ""},
		{"form, wrong secret", url.Values{"client_id": {clientID}, "client_secret": {"wrong"}}, "", "", http.StatusUnauthorized, ""},
		{"form, client id not a uuid", url.Values{"client_id": {"someone"}, "client_secret": {"secret"}}, "", "", http.StatusUnauthorized, ""},
		{"form, no secret", url.Values{"client_id": {clientID}}, "", "", http.StatusUnauthorized, ""},
		{"basic, wrong secret", url.Values{}, clientID, "wrong", http.StatusUnauthorized, "Basic"},
		{"no credentials", url.Values{}, "", "", http.StatusUnauthorized, "Basic"},
		{"basic and form", url.Values{"client_id": {clientID}, "client_secret": {"secret"}}, clientID, "secret", http.StatusBadRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("grant_type", "client_credentials")
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/"+cust.String()+"/login/token", strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.basicUser != "" {
				req.SetBasicAuth(tc.basicUser, tc.basicPass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tc.want)
			}
			got := resp.Header.Get("WWW-Authenticate")
			if tc.wantChallenge == "" && got != "" || !strings.HasPrefix(got, tc.wantChallenge) {
				t.Errorf("WWW-Authenticate: got %q, want %q", got, tc.wantChallenge)
			}
		})
	}
}

// TestRootLeadsToConsole: / redirects to the console when one is served.
func TestRootLeadsToConsole(t *testing.T) {
	db, _, _ := testTenant(t)
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("console")) })
	srv := httptest.NewServer(New(Options{DB: db, Console: console}))
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /: got %d to %q, want 302 to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
}
