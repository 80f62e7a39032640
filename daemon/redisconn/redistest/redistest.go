// Package redistest gives tests a real Redis to work against: the shared
// server under a key prefix of their own that is deleted when the test ends,
// or a private redis-server process the test may kill. It is imported only
// from _test.go files.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/redisconn"
)

// URLEnv names the environment variable that overrides the shared test Redis.
const URLEnv = "POSTAL_TEST_REDIS_URL"

// DefaultURL is the shared test Redis used when URLEnv is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// New returns a client to the shared test Redis and a key namer under a
// random prefix. When the test ends every key under that prefix is deleted
// and the client closed. The test fails at once when Redis does not answer.
func New(t testing.TB) (redis.UniversalClient, redisconn.Keys) {
	t.Helper()
	return NewOn(t, redisconn.Options{URL: URL()})
}

// NewOn is New for the deployment o describes (a Cluster or Sentinel
// started by StartCluster or StartSentinel, say): a client, a random key
// prefix whose keys are deleted when the test ends, and a failed test when
// Redis does not answer within 5 s.
func NewOn(t testing.TB, o redisconn.Options) (redis.UniversalClient, redisconn.Keys) {
	t.Helper()
	c, err := redisconn.New(o)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := redisconn.Ping(ctx, c); err != nil {
		_ = c.Close()
		t.Fatalf("redistest: the test Redis at %s%v is required (set %s): %v", o.URL, o.Addrs, URLEnv, err)
	}
	keys := redisconn.NewKeys("test-" + RandomHex(8))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeleteAll(ctx, c, keys); err != nil {
			t.Errorf("redistest: clean up %s: %v", keys.Prefix(), err)
		}
		_ = c.Close()
	})
	return c, keys
}

// URL returns the shared test Redis: $POSTAL_TEST_REDIS_URL or DefaultURL.
func URL() string {
	if u := os.Getenv(URLEnv); u != "" {
		return u
	}
	return DefaultURL
}

// DeleteAll deletes every key under keys' prefix, as a Redis data loss
// confined to one prefix would.
func DeleteAll(ctx context.Context, c redis.UniversalClient, keys redisconn.Keys) error {
	_, err := redisconn.DeleteAll(ctx, c, keys)
	return err
}

// RandomHex returns n random bytes, hex encoded.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Server is a private redis-server listening only on a Unix socket.
type Server struct {
	// URL is the unix:// URL of the server.
	URL string
	cmd *exec.Cmd
	// exited is closed once the process has been waited for.
	exited chan struct{}
}

// StartServer starts a private redis-server without persistence or a TCP
// port and waits until it answers. The server is killed when the test ends.
// The test fails when redis-server is missing or does not come up within 10s.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server is required: %v", err)
	}
	dir, err := os.MkdirTemp("", "redis")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	s := &Server{URL: "unix://" + sock, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.Kill)

	c, err := redisconn.New(redisconn.Options{URL: s.URL})
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("redistest: redis-server exited: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: redis-server did not answer within 10s: %v", err)
		}
		// Wait for the socket to appear rather than spinning.
		select {
		case <-s.exited:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Kill stops the server abruptly (SIGKILL) and waits until it has exited.
// It may be called more than once.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}
