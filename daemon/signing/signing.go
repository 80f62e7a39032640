// Package signing manages signing.key, the RSA key postal signs webhook
// requests with (and publishes at /.well-known/jwks.json), compatibly with
// Postal.
//
// Contract: Load returns a Key only for a regular file that exists, is not
// readable by everyone, holds a PEM RSA private key (PKCS#1 as written by
// `openssl genrsa`, or PKCS#8) of at least MinLoadBits bits that validates;
// every refusal is one line naming the path and saying what to do. WriteFile
// creates the file atomically with mode 0600 and never replaces one unless
// forced. Signatures are base64 RSA PKCS#1 v1.5 over the exact body, as in
// Postal's X-Postal-Signature (SHA-1) and X-Postal-Signature-256 headers; the
// key id is Postal's: the hex SHA-256 of the DER RSAPublicKey. A Key is
// immutable and safe for concurrent use.
package signing

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
)

// MinBits is the smallest signing key generated.
const MinBits = 2048

// MinLoadBits is the smallest signing key accepted. Postal's installer
// (`postal bootstrap`) writes 1024-bit keys, and every webhook receiver and
// the return path's DKIM record hold that key's public half, so refusing it
// would break "switch by changing a host name"; Weak reports such a key so
// the daemon can warn.
const MinLoadBits = 1024

// Key is a loaded signing key with its derived public forms.
type Key struct {
	priv *rsa.PrivateKey
	kid  string
}

// NewKey wraps priv. It fails when priv is nil, shorter than MinLoadBits, or
// does not validate.
func NewKey(priv *rsa.PrivateKey) (*Key, error) {
	if priv == nil {
		return nil, errors.New("signing key: nil key")
	}
	if n := priv.N.BitLen(); n < MinLoadBits {
		return nil, fmt.Errorf("signing key: %d bits, at least %d required", n, MinLoadBits)
	}
	if err := priv.Validate(); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	priv.Precompute()
	sum := sha256.Sum256(x509.MarshalPKCS1PublicKey(&priv.PublicKey))
	return &Key{priv: priv, kid: hex.EncodeToString(sum[:])}, nil
}

// Bits is the key's size in bits.
func (k *Key) Bits() int { return k.priv.N.BitLen() }

// Weak reports a key shorter than MinBits: accepted (Postal's installer
// writes 1024-bit keys) but worth replacing when its receivers can be told.
func (k *Key) Weak() bool { return k.Bits() < MinBits }

// Load reads and checks the signing key at path. Each failure is a one-line
// error naming path: not found (with the command that generates one), not a
// regular file, readable by everyone, unreadable, not PEM, not RSA, or
// shorter than MinLoadBits.
func Load(path string) (*Key, error) {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("signing key %s not found: run \"postalctl signing-key generate --out %s\"", path, path)
	case err != nil:
		return nil, fmt.Errorf("signing key %s cannot be read: %w", path, err)
	case !info.Mode().IsRegular():
		return nil, fmt.Errorf("signing key %s is not a regular file", path)
	case info.Mode().Perm()&0o004 != 0:
		return nil, fmt.Errorf("signing key %s is readable by everyone (mode %04o); chmod 600 it", path, info.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key %s cannot be read: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("signing key %s is not a PEM file: expected \"-----BEGIN RSA PRIVATE KEY-----\" as written by \"openssl genrsa\"", path)
	}
	var priv *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key %s is not a valid RSA private key: %w", path, err)
		}
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key %s is not a valid private key: %w", path, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key %s is not an RSA key (%s): %s", path, keyKind(k), regenerate(path))
		}
		priv = rk
	default:
		return nil, fmt.Errorf("signing key %s is not an RSA private key (PEM block %q): %s", path, block.Type, regenerate(path))
	}
	if n := priv.N.BitLen(); n < MinLoadBits {
		return nil, fmt.Errorf("signing key %s is %d bits, at least %d are required: %s", path, n, MinLoadBits, regenerate(path))
	}
	k, err := NewKey(priv)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// keyKind names the algorithm of a non-RSA private key for error messages.
func keyKind(k any) string {
	switch k.(type) {
	case *ecdsa.PrivateKey:
		return "ECDSA"
	case ed25519.PrivateKey:
		return "Ed25519"
	case *ecdh.PrivateKey:
		return "ECDH"
	default:
		return fmt.Sprintf("%T", k)
	}
}

// regenerate is the hint appended to refusals that need a new key.
func regenerate(path string) string {
	return fmt.Sprintf("run \"postalctl signing-key generate --force --out %s\"", path)
}

// Generate returns a new RSA key of bits bits; it refuses fewer than MinBits
// and more than 16384.
func Generate(bits int) (*rsa.PrivateKey, error) {
	if bits < MinBits || bits > 16384 {
		return nil, fmt.Errorf("signing key: %d bits out of range [%d, 16384]", bits, MinBits)
	}
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("signing key: generate %d bits: %w", bits, err)
	}
	return priv, nil
}

// WriteFile writes key to path as PEM PKCS#1 with mode 0600. The file appears
// atomically, complete or not at all: it is written to a temporary file in the
// same directory, synced, then linked (or, with force, renamed) into place.
// Without force an existing path is never replaced and the error says to use
// --force.
func WriteFile(path string, key *rsa.PrivateKey, force bool) error {
	if key == nil {
		return fmt.Errorf("signing key %s: nil key", path)
	}
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("signing key %s already exists: use --force to replace it", path)
		}
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("signing key %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // a no-op once renamed
	if err := writeSynced(tmp, data); err != nil {
		return fmt.Errorf("signing key %s: %w", path, err)
	}
	if force {
		err = os.Rename(tmpName, path)
	} else {
		// Link fails if path appeared since the check above: no overwrite race.
		err = os.Link(tmpName, path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("signing key %s already exists: use --force to replace it", path)
		}
	}
	if err != nil {
		return fmt.Errorf("signing key %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		syncErr := d.Sync()
		d.Close()
		if syncErr != nil {
			return fmt.Errorf("signing key %s: sync directory: %w", path, syncErr)
		}
	}
	return nil
}

func writeSynced(f *os.File, data []byte) error {
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Private returns the private key, for handing to a faster RSA
// implementation (libcrypto); the caller must not modify it.
func (k *Key) Private() *rsa.PrivateKey { return k.priv }

// Public returns the public half of the key.
func (k *Key) Public() *rsa.PublicKey { return &k.priv.PublicKey }

// PublicPEM returns the public key as a PEM "PUBLIC KEY" block
// (SubjectPublicKeyInfo), the form `openssl rsa -pubout` prints.
func (k *Key) PublicPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	if err != nil {
		return nil // unreachable for a validated RSA key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// KID returns the key id sent as X-Postal-Signature-KID: the lower-case hex
// SHA-256 of the DER RSAPublicKey (modulus, exponent), as Postal's JWT
// library derives it.
func (k *Key) KID() string { return k.kid }

// JWK is an RSA public key in JSON Web Key form (RFC 7517), fields in the
// order Postal serves them.
type JWK struct {
	Kty string `json:"kty"` // "RSA"
	N   string `json:"n"`   // modulus, base64url without padding
	E   string `json:"e"`   // public exponent, base64url without padding
	Use string `json:"use"` // "sig"
	Alg string `json:"alg"` // "RS256"
	Kid string `json:"kid"` // KID()
}

// JWK returns the public key as a JWK.
func (k *Key) JWK() JWK {
	pub := &k.priv.PublicKey
	return JWK{
		Kty: "RSA",
		N:   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		Use: "sig",
		Alg: "RS256",
		Kid: k.kid,
	}
}

// JWKS returns the JSON document served at /.well-known/jwks.json:
// {"keys":[<JWK>]}.
func (k *Key) JWKS() []byte {
	doc, err := json.Marshal(struct {
		Keys []JWK `json:"keys"`
	}{[]JWK{k.JWK()}})
	if err != nil {
		return nil // unreachable: the struct holds only strings
	}
	return doc
}

// SignSHA1 returns the base64 RSA PKCS#1 v1.5 SHA-1 signature of body, the
// value of Postal's X-Postal-Signature header. It returns "" only if the
// signature cannot be computed, which a Key from Load or NewKey rules out.
func (k *Key) SignSHA1(body []byte) string {
	sum := sha1.Sum(body)
	return k.sign(crypto.SHA1, sum[:])
}

// SignSHA256 returns the base64 RSA PKCS#1 v1.5 SHA-256 signature of body,
// the value of Postal's X-Postal-Signature-256 header. It returns "" only if
// the signature cannot be computed, which a Key from Load or NewKey rules out.
func (k *Key) SignSHA256(body []byte) string {
	sum := sha256.Sum256(body)
	return k.sign(crypto.SHA256, sum[:])
}

func (k *Key) sign(h crypto.Hash, digest []byte) string {
	sig, err := rsa.SignPKCS1v15(nil, k.priv, h, digest)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// VerifySHA256 checks an X-Postal-Signature-256 value against body. It
// returns nil when sig is a valid signature by pub, and an error when sig is
// not base64 or does not verify.
func VerifySHA256(pub *rsa.PublicKey, body []byte, sig string) error {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("signature: not base64: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	return nil
}

// VerifySHA1 checks an X-Postal-Signature (SHA-1) value against body, with
// the same results as VerifySHA256.
func VerifySHA1(pub *rsa.PublicKey, body []byte, sig string) error {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("signature: not base64: %w", err)
	}
	sum := sha1.Sum(body)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA1, sum[:], raw); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	return nil
}
