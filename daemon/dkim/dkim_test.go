package dkim_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/postalgo/postal/daemon/dkim"
)

const testMessage = "From: Alice <alice@example.com>\r\n" +
	"To: bob@example.org\r\n" +
	"Subject:   Hello    there\r\n" +
	"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n" +
	"Message-ID: <abc@example.com>\r\n" +
	"X-Mailer: not signed\r\n" +
	"Received: from somewhere\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello Bob,  \r\n\r\nsee you.\r\n\r\n\r\n"

func testKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, err := dkim.GenerateKey(dkim.DefaultKeyBits)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// verify checks msg with go-msgauth, serving RecordValue(pub) at
// RecordName(selector, domain) and nothing elsewhere.
func verify(t *testing.T, msg []byte, selector, domain string, pub *rsa.PublicKey) (*msgdkim.Verification, error) {
	t.Helper()
	lookup := func(name string) ([]string, error) {
		if name == dkim.RecordName(selector, domain) {
			return []string{dkim.RecordValue(pub)}, nil
		}
		return nil, fmt.Errorf("no TXT at %s", name)
	}
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(msg), &msgdkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		return nil, err
	}
	if len(vs) != 1 {
		t.Fatalf("found %d signatures, want 1", len(vs))
	}
	return vs[0], vs[0].Err
}

func TestSignVerifiesAgainstPublishedRecord(t *testing.T) {
	key := testKey(t)
	const domain, selector = "example.com", "postal-ABCDEF"
	s, err := dkim.NewSigner(domain, selector, key)
	if err != nil {
		t.Fatal(err)
	}
	lfOnly := strings.ReplaceAll(testMessage, "\r\n", "\n")
	tests := []struct {
		name       string
		msg        string
		wantFields []string
	}{
		{"CRLF message", testMessage, []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}},
		{"LF message is normalised", lfOnly, []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}},
		{"repeated and folded fields", "From: a@example.com\r\nTo: x@example.org,\r\n y@example.org\r\nTo: z@example.org\r\n\r\nbody\r\n",
			[]string{"From", "To", "To"}},
		{"message without From signs its absence", "Subject: hi\r\n\r\nbody\r\n", []string{"Subject", "From"}},
		{"header only", "From: a@example.com\r\nSubject: hi", []string{"From", "Subject"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed, err := s.Sign([]byte(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			v, err := verify(t, signed, selector, domain, &key.PublicKey)
			if err != nil {
				t.Fatalf("verification failed: %v\n%s", err, signed)
			}
			if v.Domain != domain {
				t.Errorf("verified domain %q, want %q", v.Domain, domain)
			}
			if !slices.EqualFunc(v.HeaderKeys, tt.wantFields, strings.EqualFold) {
				t.Errorf("signed fields %v, want %v", v.HeaderKeys, tt.wantFields)
			}
			head := string(signed[:bytes.Index(signed, []byte("\r\n\r\n"))])
			if !strings.HasPrefix(head, "DKIM-Signature:") {
				t.Errorf("signature not prepended:\n%s", head)
			}
			for _, tag := range []string{"a=rsa-sha256", "c=relaxed/relaxed", "d=" + domain, "s=" + selector} {
				if !strings.Contains(head, tag) {
					t.Errorf("DKIM-Signature lacks %q:\n%s", tag, head)
				}
			}
			if bytes.Contains(signed, []byte("\n")) && bytes.Count(signed, []byte("\n")) != bytes.Count(signed, []byte("\r\n")) {
				t.Errorf("signed message has bare LF line endings")
			}
		})
	}
}

func TestTamperingBreaksVerification(t *testing.T) {
	key := testKey(t)
	s, err := dkim.NewSigner("example.com", "postal-XYZABC", key)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := s.Sign([]byte(testMessage))
	if err != nil {
		t.Fatal(err)
	}
	other := testKey(t)
	tests := []struct {
		name   string
		mutate func(string) string
		pub    *rsa.PublicKey
	}{
		{"body changed", func(m string) string { return strings.Replace(m, "see you.", "see you!", 1) }, &key.PublicKey},
		{"signed header changed", func(m string) string { return strings.Replace(m, "Hello    there", "Goodbye", 1) }, &key.PublicKey},
		{"different published key", func(m string) string { return m }, &other.PublicKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.mutate(string(signed))
			if _, err := verify(t, []byte(msg), "postal-XYZABC", "example.com", tt.pub); err == nil {
				t.Error("verification succeeded, want failure")
			}
		})
	}
	t.Run("whitespace changes survive relaxed canonicalization", func(t *testing.T) {
		msg := strings.Replace(string(signed), "Hello Bob,  \r\n", "Hello   Bob,\r\n", 1)
		msg = strings.Replace(msg, "Subject:   Hello    there", "subject: Hello there", 1)
		if _, err := verify(t, []byte(msg), "postal-XYZABC", "example.com", &key.PublicKey); err != nil {
			t.Errorf("verification failed: %v", err)
		}
	})
	t.Run("unsigned header may be added", func(t *testing.T) {
		msg := strings.Replace(string(signed), "X-Mailer:", "X-Spam: no\r\nX-Mailer:", 1)
		if _, err := verify(t, []byte(msg), "postal-XYZABC", "example.com", &key.PublicKey); err != nil {
			t.Errorf("verification failed: %v", err)
		}
	})
}

func TestSignDoesNotModifyInput(t *testing.T) {
	key := testKey(t)
	s, err := dkim.NewSigner("example.com", "sel", key)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 64)
	buf = append(buf, "From: a@example.com"...)
	spare := buf[:cap(buf)]
	for i := len(buf); i < len(spare); i++ {
		spare[i] = '#'
	}
	if _, err := s.Sign(buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "From: a@example.com" || strings.Trim(string(spare[len(buf):]), "#") != "" {
		t.Errorf("Sign wrote into the caller's buffer: %q", spare)
	}
}

func TestSignConcurrently(t *testing.T) {
	key := testKey(t)
	s, err := dkim.NewSigner("example.com", "sel", key)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			msg := strings.Replace(testMessage, "see you.", fmt.Sprintf("message %d", i), 1)
			signed, err := s.Sign([]byte(msg))
			if err == nil {
				_, err = verify(t, signed, "sel", "example.com", &key.PublicKey)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestNewSignerRefuses(t *testing.T) {
	key := testKey(t)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Go no longer generates 512-bit keys; only the public half is read.
	shortKey := publicOnly{&rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 511), E: 65537}}
	tests := []struct {
		name, domain, selector string
		key                    crypto.Signer
		want                   string
	}{
		{"empty domain", "", "sel", key, "dkim: signer: empty domain"},
		{"empty selector", "example.com", "", key, "dkim: signer: empty selector"},
		{"nil key", "example.com", "sel", (*rsa.PrivateKey)(nil), "dkim: signer: nil key"},
		{"nil signer", "example.com", "sel", nil, "dkim: signer: nil key"},
		{"not rsa", "example.com", "sel", edKey, "dkim: signer: ed25519.PublicKey is not an RSA key"},
		{"short key", "example.com", "sel", shortKey, "dkim: signer: 512-bit key, at least 1024 required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := dkim.NewSigner(tt.domain, tt.selector, tt.key); err == nil || err.Error() != tt.want {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSelectorAndRecord(t *testing.T) {
	// Bytes 234..255 must be skipped so letters stay uniform; 0 -> A, 25 -> Z, 26 -> A.
	r := bytes.NewReader([]byte{0, 255, 25, 234, 26, 51, 233, 1})
	if got := dkim.NewSelector("postal", r); got != "postal-AZAZZB" {
		t.Errorf("NewSelector = %q, want postal-AZAZZB", got)
	}
	// A reader that runs dry falls back to crypto/rand.
	got := dkim.NewSelector("postal", bytes.NewReader([]byte{2}))
	if !regexp.MustCompile(`^postal-C[A-Z]{5}$`).MatchString(got) {
		t.Errorf("NewSelector with a short reader = %q", got)
	}
	seen := map[string]bool{}
	for range 20 {
		s := dkim.NewSelector("postal", nil)
		if !regexp.MustCompile(`^postal-[A-Z]{6}$`).MatchString(s) {
			t.Fatalf("NewSelector = %q, want postal-XXXXXX", s)
		}
		seen[s] = true
	}
	if len(seen) < 19 {
		t.Errorf("20 random selectors had only %d distinct values", len(seen))
	}
	if got := dkim.RecordName("postal-ABCDEF", "example.com"); got != "postal-ABCDEF._domainkey.example.com" {
		t.Errorf("RecordName = %q", got)
	}

	key := testKey(t)
	val := dkim.RecordValue(&key.PublicKey)
	m := regexp.MustCompile(`^v=DKIM1; t=s; h=sha256; p=([A-Za-z0-9+/=]+);$`).FindStringSubmatch(val)
	if m == nil {
		t.Fatalf("RecordValue = %q, not Postal's format", val)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if want := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}); !strings.Contains(strings.ReplaceAll(string(want), "\n", ""), m[1]) {
		t.Errorf("p= is not the SubjectPublicKeyInfo of the key")
	}
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	key := testKey(t)
	pemBytes := dkim.EncodePrivateKey(key)
	if !bytes.HasPrefix(pemBytes, []byte("-----BEGIN RSA PRIVATE KEY-----\n")) {
		t.Errorf("EncodePrivateKey does not write PKCS#1: %.40q", pemBytes)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// crypto/rsa no longer generates keys this small; openssl made this one.
	small, err := os.ReadFile("testdata/rsa512.pem")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"PKCS#1", pemBytes, ""},
		{"PKCS#8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), ""},
		{"not PEM", []byte("hello"), "dkim: private key: no PEM block found"},
		{"wrong block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), `dkim: private key: unsupported PEM block "CERTIFICATE"`},
		{"too short", small, "dkim: private key: 512 bits, at least 1024 required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dkim.ParsePrivateKey(tt.data)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(key) {
				t.Error("parsed key differs from the original")
			}
		})
	}
}

func TestGenerateKeyRefusesSmallKeys(t *testing.T) {
	if _, err := dkim.GenerateKey(512); err == nil {
		t.Error("GenerateKey(512) succeeded, want refusal")
	}
}

func FuzzParsePrivateKey(f *testing.F) {
	key := testKey(f)
	f.Add(dkim.EncodePrivateKey(key))
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := dkim.ParsePrivateKey(data)
		if err == nil && (k == nil || k.N.BitLen() < dkim.MinKeyBits) {
			t.Fatalf("accepted an invalid key: %v", k)
		}
	})
}

// BenchmarkSign signs a 2 KB message with the RSA key (rsa) and with a
// signer that returns a constant signature (overhead): what Sign costs
// around the RSA operation (canonicalization, hashing, header building,
// copies), which libcrypto does not speed up.
func BenchmarkSign(b *testing.B) {
	key := testKey(b)
	var body strings.Builder
	for body.Len() < 2048-len(testMessage) {
		body.WriteString("The quick brown fox jumps over the lazy dog again and again.\r\n")
	}
	msg := []byte(testMessage + body.String())
	for _, bc := range []struct {
		name   string
		signer crypto.Signer
	}{{"rsa", key}, {"overhead", fixedSigner{&key.PublicKey}}} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := dkim.NewSigner("example.com", "postal-ABCDEF", bc.signer)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// publicOnly is a crypto.Signer that cannot sign: NewSigner reads only its
// public key.
type publicOnly struct{ pub *rsa.PublicKey }

func (p publicOnly) Public() crypto.PublicKey { return p.pub }

func (p publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("cannot sign")
}

// fixedSigner returns a constant signature (BenchmarkSign's overhead).
type fixedSigner struct{ pub *rsa.PublicKey }

func (f fixedSigner) Public() crypto.PublicKey { return f.pub }

func (f fixedSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return make([]byte, f.pub.Size()), nil
}
