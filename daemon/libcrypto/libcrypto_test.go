package libcrypto_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1"
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/postalgo/postal/daemon/libcrypto"
)

// open loads libcrypto; a cgo build on Linux must find it (CI installs
// libssl3), any other build must report ErrUnavailable.
func open(t testing.TB) *libcrypto.Library {
	t.Helper()
	lib, err := libcrypto.Open()
	if err != nil {
		if errors.Is(err, libcrypto.ErrUnavailable) && !cgoLinux {
			t.Skipf("no libcrypto in this build: %v", err)
		}
		t.Fatalf("Open: %v (install libssl3)", err)
	}
	return lib
}

// newSigner generates a key of bits and loads it into lib.
func newSigner(t *testing.T, lib *libcrypto.Library, bits int) (*rsa.PrivateKey, crypto.Signer) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	s, err := lib.NewSigner(key)
	if err != nil {
		t.Fatalf("NewSigner(%d bits): %v", bits, err)
	}
	return key, s
}

func TestSignMatchesCryptoRSA(t *testing.T) {
	lib := open(t)
	if lib.Version() == "" {
		t.Error("Version is empty")
	}
	for _, bits := range []int{1024, 2048, 3072} {
		key, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		s, err := lib.NewSigner(key)
		if err != nil {
			t.Fatalf("NewSigner(%d): %v", bits, err)
		}
		if !s.Public().(*rsa.PublicKey).Equal(&key.PublicKey) {
			t.Fatalf("%d: Public is not the key's public key", bits)
		}
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			t.Run(fmt.Sprintf("%d/%v", bits, h), func(t *testing.T) {
				for i := range 3 {
					d := h.New()
					fmt.Fprintf(d, "message %d", i)
					digest := d.Sum(nil)
					got, err := s.Sign(rand.Reader, digest, h)
					if err != nil {
						t.Fatal(err)
					}
					want, err := rsa.SignPKCS1v15(nil, key, h, digest)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("signature differs from crypto/rsa's")
					}
					if err := rsa.VerifyPKCS1v15(&key.PublicKey, h, digest, got); err != nil {
						t.Fatalf("verify: %v", err)
					}
				}
			})
		}
	}
}

func TestSignRejects(t *testing.T) {
	lib := open(t)
	_, s := newSigner(t, lib, 1024)
	digest := make([]byte, 32)
	cases := []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"pss", digest, &rsa.PSSOptions{Hash: crypto.SHA256}},
		{"md5", make([]byte, 16), crypto.MD5},
		{"short digest", digest[:31], crypto.SHA256},
		{"empty digest", nil, crypto.SHA256},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if sig, err := s.Sign(nil, c.digest, c.opts); err == nil {
				t.Fatalf("signed (%d bytes), want an error", len(sig))
			}
		})
	}
	if _, err := lib.NewSigner(nil); err == nil {
		t.Error("NewSigner(nil) succeeded")
	}
}

func TestSignConcurrent(t *testing.T) {
	lib := open(t)
	key, s := newSigner(t, lib, 2048)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				d := crypto.SHA256.New()
				fmt.Fprintf(d, "%d/%d", g, i)
				digest := d.Sum(nil)
				sig, err := s.Sign(nil, digest, crypto.SHA256)
				if err == nil {
					err = rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest, sig)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestKeysAreFreed signs with many short-lived signers; the cleanup that
// frees each libcrypto key must run without crashing signers still in use.
func TestKeysAreFreed(t *testing.T) {
	lib := open(t)
	key, keep := newSigner(t, lib, 1024)
	digest := make([]byte, 32)
	for range 200 {
		s, err := lib.NewSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sign(nil, digest, crypto.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	if _, err := keep.Sign(nil, digest, crypto.SHA256); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSign2048 compares one 2048-bit PKCS #1 v1.5 signature through
// libcrypto with the same through crypto/rsa.
func BenchmarkSign2048(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	digest := make([]byte, 32)
	b.Run("libcrypto", func(b *testing.B) {
		s, err := open(b).NewSigner(key)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.Sign(nil, digest, crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("libcrypto_background", func(b *testing.B) {
		s, err := open(b).NewBackgroundSigner(key)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.Sign(nil, digest, crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("crypto_rsa", func(b *testing.B) {
		for b.Loop() {
			if _, err := key.Sign(nil, digest, crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestBackgroundSignerMatches checks that signing on a thread of its own
// makes the same bytes, from many goroutines at once.
func TestBackgroundSignerMatches(t *testing.T) {
	lib := open(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := lib.NewBackgroundSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
					d := h.New()
					fmt.Fprintf(d, "%d/%d", g, i)
					digest := d.Sum(nil)
					got, err := s.Sign(nil, digest, h)
					if err != nil {
						errs <- err
						return
					}
					want, err := rsa.SignPKCS1v15(nil, key, h, digest)
					if err == nil && !bytes.Equal(got, want) {
						err = fmt.Errorf("%v signature differs from crypto/rsa's", h)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := s.Sign(nil, make([]byte, 31), crypto.SHA256); err == nil {
		t.Error("signed a short digest")
	}
}
