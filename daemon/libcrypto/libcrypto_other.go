//go:build !cgo || !linux

package libcrypto

import (
	"crypto"
	"crypto/rsa"
	"fmt"
)

// Library is a loaded libcrypto; in this build none can be loaded.
type Library struct{}

// Open always fails in this build: loading libcrypto needs cgo on Linux.
func Open() (*Library, error) {
	return nil, fmt.Errorf("%w: built without cgo for linux", ErrUnavailable)
}

// Version returns the library's version text.
func (l *Library) Version() string { return "" }

// NewSigner always fails in this build.
func (l *Library) NewSigner(*rsa.PrivateKey) (crypto.Signer, error) {
	return nil, ErrUnavailable
}

// NewBackgroundSigner always fails in this build.
func (l *Library) NewBackgroundSigner(*rsa.PrivateKey) (crypto.Signer, error) {
	return nil, ErrUnavailable
}

// BackgroundNice is how much NewBackgroundSigner raises a signing thread's
// nice value.
const BackgroundNice = 10
