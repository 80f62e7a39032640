//go:build cgo && linux

package daemon_test

// cgoLinux: this test binary and the binaries it builds use cgo (the race
// detector, libcrypto).
const cgoLinux = true
