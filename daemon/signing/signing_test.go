package signing_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/postalgo/postal/daemon/signing"
)

// keys are generated once: RSA generation is slow under -race.
type testKeys struct {
	rsa2048 *rsa.PrivateKey
	rsa1024 *rsa.PrivateKey
	ec      *ecdsa.PrivateKey
}

var keysOnce = sync.OnceValues(func() (testKeys, error) {
	var k testKeys
	var err error
	if k.rsa2048, err = signing.Generate(2048); err != nil {
		return k, err
	}
	if k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		return k, err
	}
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return k, err
})

func keys(t *testing.T) testKeys {
	t.Helper()
	k, err := keysOnce()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is subject to umask
		t.Fatal(err)
	}
}

func TestLoadRefusals(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	regen := func(p string) string { return `run "postalctl signing-key generate --force --out ` + p + `"` }
	ecDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(path string) string // returns the path to load
		want  func(path string) string
	}{
		{"missing file", func(p string) string { return p },
			func(p string) string {
				return "signing key " + p + ` not found: run "postalctl signing-key generate --out ` + p + `"`
			}},
		{"unreadable (a parent is a file)", func(p string) string {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(p, "signing.key")
		}, func(p string) string {
			return "signing key " + p + " cannot be read: stat " + p + ": not a directory"
		}},
		{"directory", func(p string) string {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			return p
		}, func(p string) string { return "signing key " + p + " is not a regular file" }},
		{"readable by everyone", func(p string) string {
			writePEM(t, p, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.rsa2048), 0o644)
			return p
		}, func(p string) string {
			return "signing key " + p + " is readable by everyone (mode 0644); chmod 600 it"
		}},
		{"not PEM", func(p string) string {
			if err := os.WriteFile(p, []byte("hello\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, func(p string) string {
			return "signing key " + p + ` is not a PEM file: expected "-----BEGIN RSA PRIVATE KEY-----" as written by "openssl genrsa"`
		}},
		{"ECDSA in PKCS#8", func(p string) string {
			writePEM(t, p, "PRIVATE KEY", ecDER, 0o600)
			return p
		}, func(p string) string { return "signing key " + p + " is not an RSA key (ECDSA): " + regen(p) }},
		{"other PEM block", func(p string) string {
			writePEM(t, p, "CERTIFICATE", []byte{1, 2, 3}, 0o600)
			return p
		}, func(p string) string {
			return "signing key " + p + ` is not an RSA private key (PEM block "CERTIFICATE"): ` + regen(p)
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(filepath.Join(dir, "case"+string(rune('a'+i))))
			_, err := signing.Load(path)
			if want := tt.want(path); err == nil || err.Error() != want {
				t.Errorf("Load error =\n  %v\nwant\n  %s", err, want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

func TestLoadAcceptsPKCS1AndPKCS8(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k.rsa2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"pkcs1": {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.rsa2048)},
		"pkcs8": {Type: "PRIVATE KEY", Bytes: pkcs8},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			writePEM(t, path, block.Type, block.Bytes, 0o640)
			key, err := signing.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !key.Public().Equal(&k.rsa2048.PublicKey) {
				t.Error("loaded a different key")
			}
		})
	}
}

func TestGenerateWriteLoadRoundTrip(t *testing.T) {
	k := keys(t)
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := signing.WriteFile(path, k.rsa2048, false); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode %04o, want 0600", mode)
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, []byte("-----BEGIN RSA PRIVATE KEY-----\n")) {
		t.Errorf("not PEM PKCS#1: %.40q", data)
	}
	key, err := signing.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().Equal(&k.rsa2048.PublicKey) {
		t.Error("loaded key differs from the written one")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only signing.key (temp file left behind?)", len(entries))
	}
}

func TestWriteFileOverwrite(t *testing.T) {
	k := keys(t)
	other, err := signing.Generate(2048)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := signing.WriteFile(path, k.rsa2048, false); err != nil {
		t.Fatal(err)
	}
	err = signing.WriteFile(path, other, false)
	if want := "signing key " + path + " already exists: use --force to replace it"; err == nil || err.Error() != want {
		t.Fatalf("second write error = %v, want %q", err, want)
	}
	if key, err := signing.Load(path); err != nil || !key.Public().Equal(&k.rsa2048.PublicKey) {
		t.Fatalf("refused write changed the file (err %v)", err)
	}
	if err := signing.WriteFile(path, other, true); err != nil {
		t.Fatalf("forced write: %v", err)
	}
	key, err := signing.Load(path)
	if err != nil || !key.Public().Equal(&other.PublicKey) {
		t.Fatalf("forced write did not replace the key (err %v)", err)
	}
}

func TestGenerateRefusesShortKeys(t *testing.T) {
	if _, err := signing.Generate(1024); err == nil {
		t.Error("Generate(1024) succeeded, want refusal")
	}
}

func TestJWKDecodesToSameKey(t *testing.T) {
	k := keys(t)
	key, err := signing.NewKey(k.rsa2048)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(key.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1", len(doc.Keys))
	}
	j := doc.Keys[0]
	for field, want := range map[string]string{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": key.KID()} {
		if j[field] != want {
			t.Errorf("%s = %q, want %q", field, j[field], want)
		}
	}
	n, err := base64.RawURLEncoding.DecodeString(j["n"])
	if err != nil {
		t.Fatal(err)
	}
	e, err := base64.RawURLEncoding.DecodeString(j["e"])
	if err != nil {
		t.Fatal(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	if !pub.Equal(key.Public()) {
		t.Error("JWK n/e do not decode to the key's public key")
	}
	if key.JWK() != (signing.JWK{Kty: "RSA", N: j["n"], E: "AQAB", Use: "sig", Alg: "RS256", Kid: key.KID()}) {
		t.Errorf("JWK() = %+v", key.JWK())
	}
	if !strings.HasPrefix(string(key.JWKS()), `{"keys":[{"kty":"RSA","n":`) {
		t.Errorf("JWKS field order differs from Postal's: %.40s", key.JWKS())
	}
}

func TestKIDMatchesPostal(t *testing.T) {
	k := keys(t)
	key, err := signing.NewKey(k.rsa2048)
	if err != nil {
		t.Fatal(err)
	}
	// Postal (ruby-jwt's default kid) hashes the DER SEQUENCE { n, e }.
	sum := sha256.Sum256(x509.MarshalPKCS1PublicKey(&k.rsa2048.PublicKey))
	if want := hex.EncodeToString(sum[:]); key.KID() != want {
		t.Errorf("KID = %s, want %s", key.KID(), want)
	}
	if len(key.KID()) != 64 {
		t.Errorf("KID length %d, want 64 hex digits", len(key.KID()))
	}
	block, _ := pem.Decode(key.PublicPEM())
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("PublicPEM is not a PUBLIC KEY block: %q", key.PublicPEM())
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !key.Public().Equal(pub) {
		t.Errorf("PublicPEM does not hold the public key (err %v)", err)
	}
}

func TestSignaturesVerify(t *testing.T) {
	k := keys(t)
	key, err := signing.NewKey(k.rsa2048)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"event":"MessageSent","payload":{"id":1}}`)
	s256 := key.SignSHA256(body)
	s1 := key.SignSHA1(body)
	if s256 == "" || s1 == "" {
		t.Fatal("empty signature")
	}
	tests := []struct {
		name    string
		verify  func(*rsa.PublicKey, []byte, string) error
		sig     string
		body    []byte
		wantErr bool
	}{
		{"SHA-256 verifies", signing.VerifySHA256, s256, body, false},
		{"SHA-1 verifies", signing.VerifySHA1, s1, body, false},
		{"SHA-256 over a changed body fails", signing.VerifySHA256, s256, append([]byte(" "), body...), true},
		{"SHA-1 signature is not a SHA-256 one", signing.VerifySHA256, s1, body, true},
		{"not base64", signing.VerifySHA256, "%%%", body, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.verify(key.Public(), tt.body, tt.sig)
			if (err != nil) != tt.wantErr {
				t.Errorf("error = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

// A 1024-bit key, as Postal's installer writes, loads (its receivers and
// the return path's DKIM record know it), reports itself weak, and signs
// what verifies.
func TestLoadAcceptsPostalsInstallerKey(t *testing.T) {
	k := keys(t)
	path := filepath.Join(t.TempDir(), "signing.key")
	writePEM(t, path, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.rsa1024), 0o600)
	key, err := signing.Load(path)
	if err != nil {
		t.Fatalf("Load(1024-bit key) = %v, want it accepted", err)
	}
	if key.Bits() != 1024 || !key.Weak() {
		t.Errorf("Bits() = %d, Weak() = %v; want 1024, true", key.Bits(), key.Weak())
	}
	body := []byte(`{"event":"MessageSent"}`)
	if err := signing.VerifySHA256(key.Public(), body, key.SignSHA256(body)); err != nil {
		t.Errorf("SHA-256 signature of a 1024-bit key: %v", err)
	}
	if err := signing.VerifySHA1(key.Public(), body, key.SignSHA1(body)); err != nil {
		t.Errorf("SHA-1 signature of a 1024-bit key: %v", err)
	}
	strong, err := signing.NewKey(k.rsa2048)
	if err != nil || strong.Weak() {
		t.Errorf("2048-bit key: Weak() = %v, err %v; want false", strong != nil && strong.Weak(), err)
	}
}
