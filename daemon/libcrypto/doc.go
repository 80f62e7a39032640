// Package libcrypto signs with RSA keys through the system's OpenSSL
// libcrypto, loaded at run time with dlopen.
//
// Go's crypto/rsa is constant-time pure Go; on the machines we measure it
// signs with a 2048-bit key about four times slower than OpenSSL, whose
// assembly is tuned per CPU. Every outgoing message carries a DKIM signature,
// so that signature is the largest single cost of delivery. Open loads
// libcrypto (3.x or 1.1) when the binary was built with cgo on Linux and the
// library is installed, and fails with ErrUnavailable otherwise; callers then
// keep signing with crypto/rsa, which yields byte-identical signatures
// (PKCS #1 v1.5 is deterministic).
//
// NewBackgroundSigner signs at a lower CPU priority (webhook signatures,
// two per request, which must not slow the mail delivery running in the
// same process): signatures run on a few OS threads whose nice value is
// raised, each locked for good to one goroutine that does nothing else, so
// no other goroutine ever runs with the lowered priority.
//
// Nothing links against libcrypto at build time: building needs a C compiler
// only, and a binary built here runs where libcrypto is absent.
package libcrypto

import "errors"

// ErrUnavailable is returned by Open when libcrypto cannot be used: the
// binary was built without cgo, or no libcrypto is installed.
var ErrUnavailable = errors.New("libcrypto: unavailable")
