package httpapi

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"hookd/store"
	"hookd/wire"
)

// bearer extracts the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") || len(token) > 512 {
		return "", false
	}
	return token, true
}

// customer authenticates a customer's call: a missing or malformed bearer
// header is 401; an unknown token 401; an expired or revoked token, a token
// without the webhooks scope or of another customer 403.
func (s *Server) customer(h customerHandler) http.Handler {
	return s.handle(s.authCustomer(h))
}

// customerStream is customer for long responses (export downloads): the
// same checks, without the API timeout.
func (s *Server) customerStream(h customerHandler) http.Handler {
	return s.handleStream(s.authCustomer(h))
}

// authCustomer runs h for the customer that the request's token belongs to.
func (s *Server) authCustomer(h customerHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		token, ok := bearer(r)
		if !ok {
			return errUnauthorized("an Authorization: Bearer <access token> header is required")
		}
		t, err := s.DB.LookupToken(store.HashSecret(token))
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized("the access token is not valid")
		}
		if err != nil {
			return err
		}
		switch {
		case t.Revoked:
			return errForbidden("the access token was revoked")
		case !s.DB.Now().Before(t.ExpiresAt):
			return errForbidden("the access token has expired")
		case !hasScope(t.Scope, WebhooksScope):
			return errForbidden("the access token lacks the " + WebhooksScope + " scope")
		}
		cid, err := uuid.Parse(pathVar(r, "customerId"))
		if err != nil || t.CustomerID != cid {
			return errForbidden("the token does not grant access to this customer")
		}
		if err := s.limitClient(t.ClientID.String()); err != nil {
			return err
		}
		return h(w, r, cid)
	}
}

func hasScope(scopes, want string) bool {
	for _, s := range strings.Fields(scopes) {
		if s == want {
			return true
		}
	}
	return false
}

// admin guards the operator's API with the admin token.
func (s *Server) admin(h handlerFunc) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		if err := s.authAdmin(r); err != nil {
			return err
		}
		return h(w, r)
	})
}

// authAdmin checks the admin token: a missing or malformed bearer header is
// 401, a wrong token 403.
func (s *Server) authAdmin(r *http.Request) error {
	token, ok := bearer(r)
	if !ok {
		return errUnauthorized("an Authorization: Bearer <admin token> header is required")
	}
	if s.AdminToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.AdminToken)) != 1 {
		return errForbidden("the admin token is not valid")
	}
	return nil
}

// tokenResponse is the token endpoint's answer.
type tokenResponse = wire.Token

// issueToken implements the client-credentials grant (SPEC section 2).
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathUUID(r, "customerId")
	if err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded":
		err = r.ParseForm()
	case "multipart/form-data":
		err = r.ParseMultipartForm(64 << 10)
	default:
		return problem(http.StatusUnsupportedMediaType, "unsupported-media-type",
			"send the form as application/x-www-form-urlencoded or multipart/form-data")
	}
	if err != nil {
		return errBadRequest("invalid-request-body", "the form could not be parsed")
	}
	user, pass, inBody, err := clientCredentials(r)
	if err != nil {
		return err
	}
	// A refusal names the Basic scheme only to a client that used it: a
	// browser answers a Basic challenge to a page's fetch with its own login
	// box, so the console sends its credentials in the form instead.
	badClient := errBadClient
	if inBody {
		badClient = errBadFormClient
	}
	// Token requests count against the client they name, valid or not,
	// so that guessing a client's secret is as slow as its rate.
	if err := s.limitClient(user[:min(len(user), 64)]); err != nil {
		return err
	}
	if gt := r.PostFormValue("grant_type"); gt != "client_credentials" {
		return errInvalidParams([]ParamError{{Name: "grant_type", Reason: "must be client_credentials"}})
	}
	scope := r.PostFormValue("scope")
	if scope == "" {
		scope = WebhooksScope
	}
	if len(scope) > 1024 || strings.ContainsAny(scope, "\"\\") {
		return errInvalidParams([]ParamError{{Name: "scope", Reason: "is not a valid scope"}})
	}
	clientID, err := uuid.Parse(user)
	if err != nil {
		return badClient("the client credentials are not valid")
	}
	cl, err := s.DB.Authenticate(cid, clientID, pass)
	if errors.Is(err, store.ErrNotFound) {
		return badClient("the client credentials are not valid")
	}
	if err != nil {
		return err
	}
	token, err := randomToken()
	if err != nil {
		return err
	}
	expires := s.DB.Now().Add(s.TokenTTL).UTC()
	if err := s.DB.PutToken(store.HashSecret(token), store.Token{CustomerID: cid, ClientID: cl.ID, Scope: scope, ExpiresAt: expires}); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, tokenResponse{AccessToken: token, TokenType: "Bearer", ExpiresIn: int64(s.TokenTTL / time.Second), Scope: scope})
}

// clientCredentials reads the client's id and secret from HTTP Basic or,
// as RFC 6749 section 2.3.1 allows, from the form's client_id and
// client_secret (inBody). A request must use exactly one of the two.
func clientCredentials(r *http.Request) (id, secret string, inBody bool, err error) {
	user, pass, basic := r.BasicAuth()
	_, formID := r.PostForm["client_id"]
	_, formSecret := r.PostForm["client_secret"]
	switch {
	case basic && (formID || formSecret):
		return "", "", false, errBadRequest("invalid-request-body", "send the client credentials either with HTTP Basic or as client_id and client_secret in the form, not both")
	case basic:
		return user, pass, false, nil
	case formID && formSecret:
		return r.PostFormValue("client_id"), r.PostFormValue("client_secret"), true, nil
	case formID || formSecret:
		return "", "", true, errBadFormClient("the form needs both client_id and client_secret")
	}
	return "", "", false, errBadClient("HTTP Basic client_id:client_secret credentials are required")
}

// randomToken returns a 256-bit random value, base64url encoded.
func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// keySet returns a customer's key set with the keys of every algorithm,
// storing those of the algorithms it lacks first.
func (s *Server) keySet(cid uuid.UUID) (store.KeySet, error) {
	ks, err := s.DB.KeySet(cid)
	if err != nil || len(ks.Missing()) == 0 || s.Hooks.MissingKeys == nil {
		return ks, err
	}
	missing, err := s.Hooks.MissingKeys(ks)
	if err != nil {
		return store.KeySet{}, err
	}
	return s.DB.AddKeyTriples(cid, missing)
}

// jwks publishes a customer's signing keys (RFC 7517). It needs no token.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathUUID(r, "customerId")
	if err != nil {
		return err
	}
	ks, err := s.keySet(cid)
	if err != nil {
		return err
	}
	doc, err := s.Hooks.JWKS(ks)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(doc)
	return nil
}
