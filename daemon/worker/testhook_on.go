//go:build postaltest

package worker

import (
	"os"
	"syscall"
)

// CrashBeforeCommitEnv exists only in binaries built with -tags postaltest
// (end-to-end tests). It names a file: the first outcome commit of a process
// that finds the file missing creates it and kills the process with SIGKILL
// just before committing, standing for a worker killed between a send and
// its outcome. Later processes find the file and commit normally.
const CrashBeforeCommitEnv = "POSTAL_TEST_CRASH_BEFORE_COMMIT"

func beforeCommit() {
	path := os.Getenv(CrashBeforeCommitEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	_ = f.Close()
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
}
