//go:build cgo && linux

package libcrypto_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/libcrypto"
)

const cgoLinux = true

// TestBackgroundSignerLowersItsThread signs in a loop and looks for a thread
// of this process whose nice value is raised by BackgroundNice while it
// signs (proc(5): field 19 of /proc/self/task/TID/stat).
func TestBackgroundSignerLowersItsThread(t *testing.T) {
	lib := open(t)
	key, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	s, err := lib.NewBackgroundSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	base := niceOf(t, "self")
	want := min(base+libcrypto.BackgroundNice, 19)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		digest := make([]byte, 32)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Sign(nil, digest, crypto.SHA256); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if niceOf(t, "self/task/"+task.Name()) == want {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatalf("no thread with nice %d seen while signing in the background (process nice %d)", want, base)
}

// niceOf returns the nice value in /proc/PATH/stat, or -100 when the task
// is gone.
func niceOf(t *testing.T, path string) int {
	b, err := os.ReadFile("/proc/" + path + "/stat")
	if err != nil {
		return -100
	}
	// The command name in parentheses may hold spaces: fields count from
	// the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	n, err := strconv.Atoi(f[16]) // field 19 overall; f[0] is field 3
	if err != nil {
		t.Fatal(err)
	}
	return n
}
