//go:build !postaltest

package worker

// beforeCommit is a no-op outside test builds; see testhook_on.go.
func beforeCommit() {}
