package webhook

import (
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
)

// NewCryptoSigner returns a Signer that signs through s (an RSA
// crypto.Signer such as a libcrypto key, which makes the same PKCS #1 v1.5
// bytes as crypto/rsa, faster) with key id kid. A signature s fails to make
// is made by fallback instead, so a request is never sent unsigned.
func NewCryptoSigner(s crypto.Signer, kid string, fallback Signer) Signer {
	return &cryptoSigner{s: s, kid: kid, fallback: fallback}
}

type cryptoSigner struct {
	s        crypto.Signer
	kid      string
	fallback Signer
}

func (c *cryptoSigner) SignSHA1(body []byte) string {
	sum := sha1.Sum(body)
	if sig, err := c.s.Sign(nil, sum[:], crypto.SHA1); err == nil {
		return base64.StdEncoding.EncodeToString(sig)
	}
	return c.fallback.SignSHA1(body)
}

func (c *cryptoSigner) SignSHA256(body []byte) string {
	sum := sha256.Sum256(body)
	if sig, err := c.s.Sign(nil, sum[:], crypto.SHA256); err == nil {
		return base64.StdEncoding.EncodeToString(sig)
	}
	return c.fallback.SignSHA256(body)
}

func (c *cryptoSigner) KID() string { return c.kid }
