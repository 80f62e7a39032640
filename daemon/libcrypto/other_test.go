//go:build !cgo || !linux

package libcrypto_test

const cgoLinux = false
