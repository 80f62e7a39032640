package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		roles   []string
		version bool
		err     string
	}{
		{args: []string{"--role", "all"}, roles: AllRoles()},
		{args: []string{"--role", "cron,worker"}, roles: []string{RoleWorker, RoleCron}},
		{args: []string{"worker"}, roles: []string{RoleWorker}},
		{args: []string{"smtp-server", "--config", "x.yml"}, roles: []string{RoleSMTPServer}},
		{args: []string{"--config", "x.yml", "web-server"}, roles: []string{RoleWebServer}},
		{args: []string{"version"}, version: true},
		{args: []string{}, err: "no role given"},
		{args: []string{"--role", "mailer"}, err: `unknown role "mailer"`},
		{args: []string{"--role", "worker", "cron"}, err: "either with --role or as a process name"},
		{args: []string{"worker", "extra"}, err: "unexpected arguments: extra"},
		{args: []string{"--nope"}, err: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			o, err := parseArgs(tt.args, io.Discard)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.version != tt.version || (!tt.version && !reflect.DeepEqual(o.Roles, tt.roles)) {
				t.Fatalf("got roles %v version %v", o.Roles, o.version)
			}
		})
	}
}

func TestWaitForTargets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer bad.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name, targets, timeout, err string
	}{
		{"none", "", "", ""},
		{"tcp and http up", ln.Addr().String() + " " + ok.URL, "5", ""},
		{"http not 2xx", ok.URL + " " + bad.URL, "2", bad.URL + " did not answer within 2s: HTTP 503"},
		{"tcp closed", closedAddr, "1", closedAddr + " did not answer within 1s"},
		{"not an address", "nonsense", "0.2", "nonsense did not answer"},
		{"bad timeout", ln.Addr().String(), "soon", `WAIT_FOR_TIMEOUT: "soon" is not a positive number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := waitForTargets(context.Background(), tt.targets, tt.timeout, 20*time.Millisecond)
			if tt.err == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

// TestCPUProfile: --cpuprofile writes a profile even when the run fails, and
// an unwritable path is a one-line failure before anything starts.
func TestCPUProfile(t *testing.T) {
	dir := t.TempDir()
	env := func(stderr io.Writer) Env {
		return Env{Lookup: func(string) (string, bool) { return "", false }, Stdout: io.Discard, Stderr: stderr}
	}
	var stderr strings.Builder
	path := filepath.Join(dir, "cpu.prof")
	code := Main(context.Background(), []string{"--cpuprofile", path, "--config", filepath.Join(dir, "missing.yml"), "--role", "worker"}, env(&stderr))
	if code == exitOK {
		t.Fatalf("exit %d with a missing config", code)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("profile not written: %v", err)
	}
	stderr.Reset()
	code = Main(context.Background(), []string{"--cpuprofile", filepath.Join(dir, "no", "cpu.prof"), "--role", "worker"}, env(&stderr))
	if code != exitFailure || !strings.HasPrefix(stderr.String(), "postald: cpu profile: ") || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
