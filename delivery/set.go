package delivery

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"hookd/secevent"
	"hookd/store"
)

// TokenType is the "typ" header of every token hookd signs (RFC 8417).
const TokenType = "secevent+jwt"

// b64 is the base64url encoding without padding used by JOSE.
var b64 = base64.RawURLEncoding

// Signer signs token claims with one key. It is safe for concurrent use.
//
// The protected header is the same for every token of a key, so it is
// encoded once, in NewSigner; a token then costs one base64 of the claims,
// the signature (for RS256 and ES256 over a SHA-256 digest; Ed25519 hashes
// the input itself) and its base64: the signing input is built in a
// buffer the Signer reuses, and the token is written once. The
// result is the compact serialization of RFC 7515 section 7.1, byte for
// byte what go-jose produces for the same header and claims (the tests
// check both this and a go-jose verification).
type Signer struct {
	alg    string
	kid    string
	header string    // base64url of the protected header, with the trailing "."
	inputs sync.Pool // *[]byte: signing inputs' buffers
	rsa    *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
}

// es256SigLen is the size of an ES256 signature: R and S, 32 bytes each,
// big-endian (RFC 7518 section 3.4), not the ASN.1 DER of crypto/ecdsa.
const es256SigLen = 64

// NewSigner returns a Signer for k: compact JWS, RS256, protected header
// {"alg":"RS256","kid":k.ID,"typ":"secevent+jwt"}.
func NewSigner(k SigningKey) (*Signer, error) {
	if k.Private == nil {
		return nil, errors.New("new signer: nil key")
	}
	if k.ID == "" {
		return nil, errors.New("new signer: key has no id")
	}
	if k.Private.N.BitLen() < KeyBits {
		return nil, fmt.Errorf("new signer: %d-bit RSA key is shorter than %d bits", k.Private.N.BitLen(), KeyBits)
	}
	s := newSigner(store.AlgRS256, k.ID)
	s.rsa = k.Private
	return s, nil
}

func newSigner(alg, kid string) *Signer {
	header := appendHeader(nil, alg, kid)
	return &Signer{alg: alg, kid: kid, header: b64.EncodeToString(header) + "."}
}

// NewStoredSigner returns a Signer for a stored key of any algorithm:
// RS256 (RSA-2048 or longer), ES256 (P-256) or EdDSA (Ed25519). The
// stored id must be the key's thumbprint.
func NewStoredSigner(k store.StoredKey) (*Signer, error) {
	priv, id, err := parseAnyKey(k)
	if err != nil {
		return nil, err
	}
	if id != k.ID {
		return nil, fmt.Errorf("new signer: stored key id %q is not the key's thumbprint %q", k.ID, id)
	}
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		return NewSigner(SigningKey{ID: id, Private: p})
	case *ecdsa.PrivateKey:
		s := newSigner(store.AlgES256, id)
		s.ec = p
		return s, nil
	case ed25519.PrivateKey:
		s := newSigner(store.AlgEdDSA, id)
		s.ed = p
		return s, nil
	}
	return nil, fmt.Errorf("new signer: %T is not a signing key", priv)
}

// AppendHeader appends the JSON of the protected header of the RS256
// tokens signed with key kid.
func AppendHeader(dst []byte, kid string) []byte {
	return appendHeader(dst, store.AlgRS256, kid)
}

// appendHeader appends the JSON of the protected header of the tokens
// signed with key kid: {"alg":<alg>,"kid":<kid>,"typ":"secevent+jwt"},
// members in this order (go-jose's, which sorts them).
func appendHeader(dst []byte, alg, kid string) []byte {
	dst = append(dst, `{"alg":`...)
	dst = secevent.AppendJSONString(dst, alg)
	dst = append(dst, `,"kid":`...)
	dst = secevent.AppendJSONString(dst, kid)
	return append(dst, `,"typ":"`+TokenType+`"}`...)
}

// algPrefixes are the first 20 characters of every token of each
// algorithm: the base64 of `{"alg":"XXXXX",`, 15 bytes, which encode to
// whole base64 quanta whatever follows (each name has five letters).
var algPrefixes = func() map[string]string {
	m := map[string]string{}
	for _, alg := range store.SigningAlgs {
		m[alg] = b64.EncodeToString([]byte(`{"alg":"` + alg + `",`))
	}
	return m
}()

// SignedWith reports whether token was signed with alg, by its header.
func SignedWith(token, alg string) bool {
	p, ok := algPrefixes[alg]
	return ok && len(token) > len(p) && token[:len(p)] == p
}

// KeyID returns the kid that the Signer puts in its tokens.
func (s *Signer) KeyID() string { return s.kid }

// Alg returns the alg that the Signer puts in its tokens.
func (s *Signer) Alg() string { return s.alg }

// Sign returns the compact JWS of claims (the bytes of
// secevent.AppendClaims). RS256 (PKCS #1 v1.5) and EdDSA are
// deterministic: equal claims and key give equal tokens; ES256 is not.
//
// The signing input is built in a buffer the Signer reuses, and the token
// is written once, into the string returned: one allocation of the
// token's size per call besides what the algorithm's library makes.
func (s *Signer) Sign(claims []byte) (string, error) {
	bp, _ := s.inputs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer s.inputs.Put(bp)
	in := append((*bp)[:0], s.header...)
	in = b64.AppendEncode(in, claims)
	*bp = in
	var sig []byte
	switch {
	case s.ed != nil:
		sig = ed25519.Sign(s.ed, in)
	case s.ec != nil:
		digest := sha256.Sum256(in)
		r, ss, err := ecdsa.Sign(rand.Reader, s.ec, digest[:])
		if err != nil {
			return "", fmt.Errorf("sign token: %w", err)
		}
		var raw [es256SigLen]byte
		r.FillBytes(raw[:32])
		ss.FillBytes(raw[32:])
		sig = raw[:]
	default:
		digest := sha256.Sum256(in)
		var err error
		sig, err = rsa.SignPKCS1v15(nil, s.rsa, crypto.SHA256, digest[:])
		if err != nil {
			return "", fmt.Errorf("sign token: %w", err)
		}
	}
	var token strings.Builder
	token.Grow(len(in) + 1 + b64.EncodedLen(len(sig)))
	token.Write(in)
	token.WriteByte('.')
	// The signature's base64 goes through the stack in whole quanta.
	var chunk [512]byte
	for len(sig) > 0 {
		n := min(len(sig), len(chunk)/4*3)
		b64.Encode(chunk[:], sig[:n])
		token.Write(chunk[:b64.EncodedLen(n)])
		sig = sig[n:]
	}
	return token.String(), nil
}

// Sign returns the compact JWS of claims signed with k, as
// NewSigner(k).Sign(claims) does. Callers signing many tokens with one key
// keep a Signer instead.
func Sign(k SigningKey, claims []byte) (string, error) {
	s, err := NewSigner(k)
	if err != nil {
		return "", err
	}
	return s.Sign(claims)
}

// Verify checks the RS256 signature and the "typ" header of a compact
// token against pub and returns its payload. It checks no claims.
func Verify(token string, pub *rsa.PublicKey) ([]byte, error) {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("verify token: want exactly one signature")
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string); typ != TokenType {
		return nil, fmt.Errorf("verify token: typ %q, want %q", typ, TokenType)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	return payload, nil
}
