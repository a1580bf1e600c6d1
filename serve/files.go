package serve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/uuid"

	"hookd/delivery"
	"hookd/store"
)

// readOrCreateToken returns the admin token kept in path, creating it (mode
// 0600) when missing.
func readOrCreateToken(path string, generate func() (string, error)) (string, bool, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(data)); t != "" {
			return t, false, nil
		}
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	t, err := generate()
	if err != nil {
		return "", false, err
	}
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return t, true, nil
}

// apiClientRate is the API's ClientRate for --client-rate: 0 (off) is
// negative there, where 0 means the default.
func apiClientRate(perSecond float64) float64 {
	if perSecond == 0 {
		return -1
	}
	return perSecond
}

// devCustomer is the demo customer created by serve --dev on an empty store.
var devCustomer = uuid.MustParse("00000000-0000-4000-8000-000000000001")

// devBootstrap, with --dev, creates a demo customer and client on an empty
// store and prints how to get a token.
func (m *Main) devBootstrap(_ context.Context) error {
	if !m.cfg.Dev {
		return nil
	}
	customers, err := m.db.Customers()
	if err != nil || len(customers) > 0 {
		return err
	}
	secret, err := randomSecret()
	if err != nil {
		return err
	}
	cl, err := m.db.CreateClient(devCustomer, uuid.New(), store.HashSecret(secret), delivery.NewKeySet)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.opts.Stdout, `
hookd --dev created a demo customer and client (shown once):
  customer id:   %[1]s
  client id:     %[2]s
  client secret: %[3]s

Get a token:
  curl -s -u '%[2]s:%[3]s' -d grant_type=client_credentials -d 'scope=*:webhooks/**' \
    %[4]s/%[1]s/login/token

Console: %[4]s/console/?customer=%[1]s

`, devCustomer, cl.ID, secret, m.baseURL)
	return nil
}
