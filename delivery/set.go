package delivery

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"hookd/secevent"
)

// TokenType is the "typ" header of every token hookd signs (RFC 8417).
const TokenType = "secevent+jwt"

// b64 is the base64url encoding without padding used by JOSE.
var b64 = base64.RawURLEncoding

// Signer signs token claims with one key. It is safe for concurrent use.
//
// The protected header is the same for every token of a key, so it is
// encoded once, in NewSigner; a token then costs one base64 of the claims,
// one SHA-256 and the RSA signature, written into a single buffer. The
// result is the compact serialization of RFC 7515 section 7.1, byte for
// byte what go-jose produces for the same header and claims (the tests
// check both this and a go-jose verification).
type Signer struct {
	kid    string
	key    *rsa.PrivateKey
	header string // base64url of the protected header, with the trailing "."
}

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
	header := AppendHeader(nil, k.ID)
	return &Signer{kid: k.ID, key: k.Private, header: b64.EncodeToString(header) + "."}, nil
}

// AppendHeader appends the JSON of the protected header of the tokens
// signed with key kid: {"alg":"RS256","kid":<kid>,"typ":"secevent+jwt"},
// members in this order (go-jose's, which sorts them).
func AppendHeader(dst []byte, kid string) []byte {
	dst = append(dst, `{"alg":"RS256","kid":`...)
	dst = secevent.AppendJSONString(dst, kid)
	return append(dst, `,"typ":"`+TokenType+`"}`...)
}

// KeyID returns the kid that the Signer puts in its tokens.
func (s *Signer) KeyID() string { return s.kid }

// Sign returns the compact JWS of claims (the bytes of secevent.AppendClaims). RSA
// PKCS #1 v1.5 is deterministic: equal claims and key give equal tokens.
func (s *Signer) Sign(claims []byte) (string, error) {
	payloadLen := b64.EncodedLen(len(claims))
	sigLen := b64.EncodedLen(s.key.Size())
	buf := make([]byte, len(s.header)+payloadLen+1+sigLen)
	n := copy(buf, s.header)
	b64.Encode(buf[n:], claims)
	n += payloadLen
	digest := sha256.Sum256(buf[:n])
	sig, err := rsa.SignPKCS1v15(nil, s.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	buf[n] = '.'
	b64.Encode(buf[n+1:], sig)
	return string(buf), nil
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
