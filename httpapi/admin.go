package httpapi

import (
	"net/http"

	"github.com/google/uuid"

	"hookd/store"
	"hookd/wire"
)

// clientJSON is a client as the admin API shows it; the secret only once, at creation.
type clientJSON = wire.Client

// createClient creates a confidential client, and the customer with its
// signing keys on first use. The secret is returned once.
func (s *Server) createClient(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathUUID(r, "customerId")
	if err != nil {
		return err
	}
	secret, err := randomToken()
	if err != nil {
		return err
	}
	cl, err := s.DB.CreateClient(cid, uuid.New(), store.HashSecret(secret), s.Hooks.KeyGen)
	if err != nil {
		return err
	}
	s.Log.Info().Str("customerId", cid.String()).Str("clientId", cl.ID.String()).Msg("client created")
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, clientJSON{CustomerID: cid, ClientID: cl.ID, ClientSecret: secret, CreatedAt: timeJSON(cl.CreatedAt)})
}

func (s *Server) listClients(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathUUID(r, "customerId")
	if err != nil {
		return err
	}
	clients, err := s.DB.Clients(cid)
	if err != nil {
		return err
	}
	out := make([]clientJSON, 0, len(clients))
	for _, c := range clients {
		out = append(out, clientJSON{CustomerID: cid, ClientID: c.ID, CreatedAt: timeJSON(c.CreatedAt)})
	}
	return writeJSON(w, http.StatusOK, wire.ClientList{Total: len(out), Clients: out})
}

func (s *Server) revokeClient(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathUUID(r, "customerId")
	if err != nil {
		return err
	}
	clientID, err := pathUUID(r, "clientId")
	if err != nil {
		return err
	}
	if err := s.DB.RevokeClient(cid, clientID); err != nil {
		return err
	}
	s.Log.Info().Str("customerId", cid.String()).Str("clientId", clientID.String()).Msg("client revoked")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotateKeys promotes the next signing key of every algorithm, retires the
// previous ones and returns the new key set's ids.
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) error {
	cid, err := pathUUID(r, "customerId")
	if err != nil {
		return err
	}
	ks, err := s.keySet(cid)
	if err != nil {
		return err
	}
	next, err := s.Hooks.NewKeys(ks)
	if err != nil {
		return err
	}
	if ks, err = s.DB.RotateKeys(cid, next); err != nil {
		return err
	}
	if s.Hooks.KeysRotated != nil {
		s.Hooks.KeysRotated(cid)
	}
	out := wire.KeyRotation{
		CustomerID: cid, Previous: ks.Previous.ID, Current: ks.Current.ID, Next: ks.Next.ID, RotatedAt: timeJSON(ks.RotatedAt),
		Algorithms: []wire.KeyTriple{},
	}
	ev := s.Log.Info().Str("customerId", cid.String())
	for _, t := range ks.Triples() {
		out.Algorithms = append(out.Algorithms, wire.KeyTriple{Alg: t.Alg(), Previous: t.Previous.ID, Current: t.Current.ID, Next: t.Next.ID})
		ev = ev.Str("signingKid"+t.Alg(), t.Current.ID)
	}
	ev.Msg("signing keys rotated")
	return writeJSON(w, http.StatusOK, out)
}
