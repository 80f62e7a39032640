package queuecmd_test

import (
	"context"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// redisOf connects to the Redis of e's configuration and deletes every key
// under its prefix when the test ends.
func redisOf(t *testing.T, e *clitest.Env) (redis.UniversalClient, redisconn.Keys) {
	t.Helper()
	cfg, err := config.Load(e.ConfigPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := redisconn.New(cli.RedisOptions(cfg.Redis))
	if err != nil {
		t.Fatal(err)
	}
	keys := redisconn.NewKeys(cfg.Redis.KeyPrefix)
	t.Cleanup(func() {
		if err := redistest.DeleteAll(context.Background(), c, keys); err != nil {
			t.Errorf("delete test keys: %v", err)
		}
		_ = c.Close()
	})
	return c, keys
}

// closedRedisURL returns a Redis URL where nothing listens.
func closedRedisURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "redis://" + addr + "/0"
}

// volatile are the JSON keys whose values differ between runs.
func volatile(key string) bool {
	switch key {
	case "stream_id", "time", "created_at", "retry_after", "idle_ms", "locked_until", "redis_error":
		return true
	}
	return false
}

// normalize replaces volatile values with placeholders and re-indents out.
func normalize(t *testing.T, out string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	var walk func(key string, v any) any
	walk = func(key string, v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				x[k] = walk(k, val)
			}
		case []any:
			for i, val := range x {
				x[i] = walk(key, val)
			}
		default:
			if volatile(key) {
				return "<" + key + ">"
			}
		}
		return v
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(walk("", v)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Fatalf("output differs from %s (run with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
