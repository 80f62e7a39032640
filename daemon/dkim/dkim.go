// Package dkim creates DKIM keys, the DNS records that publish them, and
// DKIM-Signature headers for outgoing mail, compatibly with Postal.
//
// Contract: Sign produces an rsa-sha256 signature with relaxed/relaxed
// canonicalization over the header fields Postal signs (SignedHeaders()) that
// are present in the message, every occurrence in order; the public key a
// verifier finds at RecordName(selector, domain) is RecordValue(pub). Keys are
// stored as PEM PKCS#1 ("RSA PRIVATE KEY", what Postal stores); PKCS#8 is also
// read. A Signer is immutable and safe for concurrent use.
package dkim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// MinKeyBits is the smallest RSA key accepted; Postal's own domain keys are
// 1024 bits, so they still load.
const MinKeyBits = 1024

// DefaultKeyBits is the size of keys postal generates for new domains.
const DefaultKeyBits = 2048

// SignedHeaders returns the header field names signed when present, in
// Postal's order (its DKIM header class). The slice is a fresh copy.
func SignedHeaders() []string {
	return []string{
		"from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
		"mime-version", "content-type", "content-transfer-encoding",
		"resent-to", "resent-cc", "resent-from", "resent-sender", "resent-message-id",
		"in-reply-to", "references", "list-id", "list-help", "list-owner",
		"list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post",
	}
}

// signedHeader reports the canonical (lower-case) form of name when it is one
// of SignedHeaders.
func signedHeader(name string) (string, bool) {
	switch n := strings.ToLower(name); n {
	case "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
		"mime-version", "content-type", "content-transfer-encoding",
		"resent-to", "resent-cc", "resent-from", "resent-sender", "resent-message-id",
		"in-reply-to", "references", "list-id", "list-help", "list-owner",
		"list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post":
		return n, true
	default:
		return "", false
	}
}

// GenerateKey returns a new RSA key of the given size. It refuses sizes below
// MinKeyBits and above 8192.
func GenerateKey(bits int) (*rsa.PrivateKey, error) {
	if bits < MinKeyBits || bits > 8192 {
		return nil, fmt.Errorf("dkim: key size %d bits out of range [%d, 8192]", bits, MinKeyBits)
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("dkim: generate %d-bit key: %w", bits, err)
	}
	return key, nil
}

// EncodePrivateKey returns key as a PEM "RSA PRIVATE KEY" block (PKCS#1), the
// form Postal keeps in its domains table.
func EncodePrivateKey(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// ParsePrivateKey reads the first PEM block of data as an RSA private key in
// PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY") form. It fails when
// there is no PEM block, the key is not RSA, it does not validate, or it is
// shorter than MinKeyBits.
func ParsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("dkim: private key: no PEM block found")
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("dkim: private key: %w", err)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("dkim: private key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("dkim: private key: %T is not an RSA key", k)
		}
		key = rk
	default:
		return nil, fmt.Errorf("dkim: private key: unsupported PEM block %q", block.Type)
	}
	if n := key.N.BitLen(); n < MinKeyBits {
		return nil, fmt.Errorf("dkim: private key: %d bits, at least %d required", n, MinKeyBits)
	}
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("dkim: private key: %w", err)
	}
	key.Precompute()
	return key, nil
}

// NewSelector returns "<identifier>-<6 random upper-case letters>", Postal's
// selector form (identifier is dns.dkim_identifier, "postal" by default).
// Letters are drawn uniformly from r; a nil r, or one that fails, is replaced
// by crypto/rand.
func NewSelector(identifier string, r io.Reader) string {
	if r == nil {
		r = rand.Reader
	}
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	// 234 = 9*26: reject bytes above it so every letter is equally likely.
	const limit = 256 - 256%len(letters)
	out := make([]byte, 0, 6)
	buf := make([]byte, 16)
	for len(out) < 6 {
		n, err := r.Read(buf)
		if err != nil || n == 0 {
			r = rand.Reader
			continue
		}
		for _, b := range buf[:n] {
			if int(b) < limit && len(out) < 6 {
				out = append(out, letters[int(b)%len(letters)])
			}
		}
	}
	return identifier + "-" + string(out)
}

// RecordName returns the DNS name of the TXT record holding a selector's key:
// "<selector>._domainkey.<domain>".
func RecordName(selector, domain string) string {
	return selector + "._domainkey." + domain
}

// RecordValue returns the TXT record value Postal tells users to publish:
// "v=DKIM1; t=s; h=sha256; p=<base64 of the DER SubjectPublicKeyInfo>;".
func RecordValue(pub *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only a nil or malformed key fails to marshal; publish no key.
		return "v=DKIM1; t=s; h=sha256; p=;"
	}
	return "v=DKIM1; t=s; h=sha256; p=" + base64.StdEncoding.EncodeToString(der) + ";"
}

// Signer signs messages for one domain and selector. It is immutable and
// safe for concurrent use.
type Signer struct {
	domain   string
	selector string
	key      crypto.Signer
}

// NewSigner returns a Signer. key is an *rsa.PrivateKey or another
// crypto.Signer over an RSA key (such as one held by libcrypto). It fails when
// domain or selector is empty, or key is nil, not RSA, or shorter than
// MinKeyBits.
func NewSigner(domain, selector string, key crypto.Signer) (*Signer, error) {
	switch {
	case domain == "":
		return nil, errors.New("dkim: signer: empty domain")
	case selector == "":
		return nil, errors.New("dkim: signer: empty selector")
	case key == nil:
		return nil, errors.New("dkim: signer: nil key")
	}
	if k, ok := key.(*rsa.PrivateKey); ok && k == nil {
		return nil, errors.New("dkim: signer: nil key")
	}
	pub, ok := key.Public().(*rsa.PublicKey)
	switch {
	case !ok || pub == nil:
		return nil, fmt.Errorf("dkim: signer: %T is not an RSA key", key.Public())
	case pub.N.BitLen() < MinKeyBits:
		return nil, fmt.Errorf("dkim: signer: %d-bit key, at least %d required", pub.N.BitLen(), MinKeyBits)
	}
	return &Signer{domain: domain, selector: selector, key: key}, nil
}

// Domain returns the signing domain (d=).
func (s *Signer) Domain() string { return s.domain }

// Selector returns the selector (s=).
func (s *Signer) Selector() string { return s.selector }

// Sign returns msg with a DKIM-Signature header field prepended. Line endings
// are normalised to CRLF first (the form the message travels in over SMTP),
// and a message with no header/body separator is treated as all header. It
// fails when signing fails; msg is never modified.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	msg = toCRLF(msg)
	if !bytes.Contains(msg, []byte("\r\n\r\n")) {
		// Header only: end it with an empty line (on a copy, never in the
		// caller's spare capacity).
		end := "\r\n"
		if !bytes.HasSuffix(msg, []byte("\r\n")) && len(msg) > 0 {
			end = "\r\n\r\n"
		}
		msg = append(msg[:len(msg):len(msg)], end...)
	}
	opts := dkim.SignOptions{
		Domain:                 s.domain,
		Selector:               s.selector,
		Signer:                 s.key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             presentHeaders(msg),
	}
	signer, err := dkim.NewSigner(&opts)
	if err != nil {
		return nil, fmt.Errorf("dkim: sign for %s: %w", s.domain, err)
	}
	if _, err := signer.Write(msg); err != nil {
		signer.Close()
		return nil, fmt.Errorf("dkim: sign for %s: %w", s.domain, err)
	}
	if err := signer.Close(); err != nil {
		return nil, fmt.Errorf("dkim: sign for %s: %w", s.domain, err)
	}
	sig := signer.Signature()
	out := make([]byte, 0, len(sig)+len(msg))
	out = append(out, sig...)
	return append(out, msg...), nil
}

// presentHeaders lists, in order of appearance, every field of msg's header
// whose name is one of SignedHeaders. From is always included: RFC 6376 requires
// it to be signed, and listing an absent From signs its absence.
func presentHeaders(msg []byte) []string {
	keys := make([]string, 0, 16)
	hasFrom := false
	rest := msg
	for len(rest) > 0 {
		line := rest
		if i := bytes.Index(rest, []byte("\r\n")); i >= 0 {
			line, rest = rest[:i], rest[i+2:]
		} else {
			rest = nil
		}
		if len(line) == 0 {
			break // end of header
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // folded continuation
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		if h, ok := signedHeader(strings.TrimRight(string(line[:colon]), " \t")); ok {
			keys = append(keys, h)
			hasFrom = hasFrom || h == "from"
		}
	}
	if !hasFrom {
		keys = append(keys, "from")
	}
	return keys
}

// toCRLF returns msg with every bare LF (and bare CR) turned into CRLF; msg is
// returned unchanged when it already uses CRLF throughout.
func toCRLF(msg []byte) []byte {
	bare := false
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') || c == '\r' && (i+1 == len(msg) || msg[i+1] != '\n') {
			bare = true
			break
		}
	}
	if !bare {
		return msg
	}
	out := make([]byte, 0, len(msg)+len(msg)/32)
	for i := 0; i < len(msg); i++ {
		switch c := msg[i]; {
		case c == '\r' && i+1 < len(msg) && msg[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r' || c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}
