package daemon_test

// End-to-end tests of the built binaries: they run postald and postalctl as
// real processes against real SQLite/Redis.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds postald and postalctl once per test binary run, or
// returns the ones in $POSTAL_E2E_BINDIR.
func binaries(t *testing.T) (postald, postalctl string) {
	t.Helper()
	if dir := os.Getenv("POSTAL_E2E_BINDIR"); dir != "" {
		// Prebuilt binaries (scripts/bench/multiproc.sh: without the race
		// detector, or from another checkout to compare).
		return filepath.Join(dir, "postald"), filepath.Join(dir, "postalctl")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "postal-e2e-bin")
		if buildErr != nil {
			return
		}
		args := []string{"build"}
		if cgoLinux { // the race detector needs cgo
			args = append(args, "-race")
		}
		args = append(args, "-o", binDir+"/", "github.com/postalgo/postal/cmd/postald", "github.com/postalgo/postal/cmd/postalctl")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "postald"), filepath.Join(binDir, "postalctl")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// freePort returns a loopback port that is free now, for a server a test
// starts later. It is taken below the kernel's ephemeral range
// (ip_local_port_range): a port in that range can be handed, between this
// check and the server's bind, to any process that binds port 0 or opens an
// outgoing connection (every test on the machine does), and the server then
// fails to start. Below it only a test picking the same way could take it,
// and the pick is random over ~20,000 ports.
func freePort(t *testing.T) int {
	t.Helper()
	low := ephemeralLow()
	for range 200 {
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read, Linux's default).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 11000 {
		return 32768
	}
	return n
}

// install is a configured installation in a temp folder.
type install struct {
	dir, config string
	// prefix is the Redis key prefix of this installation alone.
	prefix                        string
	healthPort, webPort, smtpPort int
	smtpHealthPort                int
	// extra environment for every postald and postalctl run.
	extra []string
}

// newInstall runs `postalctl init` with free ports and migrates unless
// migrate is false.
func newInstall(t *testing.T, migrate bool) install {
	t.Helper()
	_, postalctl := binaries(t)
	dir := t.TempDir()
	in := install{dir: dir, config: filepath.Join(dir, "postal.yml"), prefix: testKeyPrefix(t), healthPort: freePort(t), webPort: freePort(t), smtpPort: freePort(t),
		smtpHealthPort: freePort(t)}
	if out, err := exec.Command(postalctl, "init", "--dir", dir, "--smtp-port", fmt.Sprint(in.smtpPort), "--web-port", fmt.Sprint(in.webPort)).CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if migrate {
		if out, err := exec.Command(postalctl, "--config", in.config, "upgrade").CombinedOutput(); err != nil {
			t.Fatalf("upgrade: %v\n%s", err, out)
		}
	}
	return in
}

// testKeyPrefix returns a Redis key prefix of this test alone and deletes
// its keys from the shared Redis when the test ends. A prefix shared
// between tests lets a postald left running by a killed run consume a
// later test's stream entries.
func testKeyPrefix(t *testing.T) string {
	prefix := "e2e-" + redistest.RandomHex(8)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := redisconn.New(redisconn.Options{URL: "redis://127.0.0.1:6379/0"})
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_ = redistest.DeleteAll(ctx, c, redisconn.NewKeys(prefix)) // best effort
	})
	return prefix
}

// env returns the environment postald runs with: the redis URL, ports and
// a unique key prefix, as environment overrides (as operators would).
func (in install) env(redisURL string) []string {
	return append(append(os.Environ(),
		"REDIS_URL="+redisURL,
		"REDIS_KEY_PREFIX="+in.prefix,
		fmt.Sprintf("WORKER_DEFAULT_HEALTH_SERVER_PORT=%d", in.healthPort),
		"WORKER_DEFAULT_HEALTH_SERVER_BIND_ADDRESS=127.0.0.1",
		fmt.Sprintf("SMTP_SERVER_DEFAULT_HEALTH_SERVER_PORT=%d", in.smtpHealthPort),
		"SMTP_SERVER_DEFAULT_HEALTH_SERVER_BIND_ADDRESS=127.0.0.1",
		"WEB_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1",
		"SMTP_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1",
		"LOGGING_FORMAT=json",
	), in.extra...)
}

type proc struct {
	cmd *exec.Cmd
	// stderr is postald's log so far; safe to read while it runs.
	stderr *syncBuffer
	done   chan error
}

func startPostald(t *testing.T, in install, redisURL string, args ...string) *proc {
	t.Helper()
	postald, _ := binaries(t)
	cmd := exec.Command(postald, append([]string{"--config", in.config}, args...)...)
	cmd.Env = in.env(redisURL)
	return startCmd(t, cmd)
}

// startCmd starts a prepared postald command, collecting its stderr, and
// kills it at cleanup.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: stderr, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func readyStatus(port int) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", port))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redisProc is a private redis-server on a TCP port that can be stopped
// and started again on the same port.
type redisProc struct {
	port int
	cmd  *exec.Cmd
}

func (r *redisProc) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisProc) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command("redis-server", "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	dieWithTest(r.cmd)
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	waitFor(t, "redis to listen", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (r *redisProc) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// A fresh install starts every role; /ready follows Redis going away and
// coming back without a restart; SIGTERM drains and exits 0.
func TestAllRolesReadyFollowsRedisAndStopsCleanly(t *testing.T) {
	r := &redisProc{port: freePort(t)}
	r.start(t)
	t.Cleanup(r.stop)
	in := newInstall(t, true)
	p := startPostald(t, in, r.url(), "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })
	if got := readyStatus(in.webPort); got != 200 {
		t.Fatalf("web server /ready = %d, want 200", got)
	}

	r.stop()
	waitFor(t, "/ready 503 with Redis down", 15*time.Second, func() bool { return readyStatus(in.healthPort) == 503 })
	r.start(t)
	waitFor(t, "/ready 200 after Redis returned", 15*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("postald exited with %v after SIGTERM\n%s", err, p.stderr)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("postald did not stop within 45s of SIGTERM\n%s", p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "postald stopped cleanly") {
		t.Fatalf("no clean-stop log line:\n%s", p.stderr)
	}
}

// postald refuses to start, with one clear reason and the right exit code,
// when its preconditions fail.
func TestRefusesToStart(t *testing.T) {
	postald, _ := binaries(t)
	tests := []struct {
		name    string
		prepare func(t *testing.T, in install)
		code    int
		want    string
	}{
		{"schema behind", func(t *testing.T, in install) {}, 1, "run `postalctl upgrade`"},
		{"signing key missing", func(t *testing.T, in install) { os.Remove(filepath.Join(in.dir, "signing.key")) },
			2, "not found: run \"postalctl signing-key generate"},
		{"signing key world-readable", func(t *testing.T, in install) { os.Chmod(filepath.Join(in.dir, "signing.key"), 0o644) },
			2, "readable by everyone"},
		{"invalid config", func(t *testing.T, in install) {
			os.WriteFile(in.config, []byte("version: 2\nsmtp_server:\n  default_port: 0\nworker:\n  threads: 0\n  thread: 3\n"), 0o600)
		}, 2, "has 2 problem(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInstall(t, false)
			tt.prepare(t, in)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, postald, "--config", in.config, "--role", "worker")
			cmd.Env = in.env("redis://127.0.0.1:6379/0")
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(string(out), tt.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d containing %q", code, out, tt.code, tt.want)
			}
		})
	}
}
