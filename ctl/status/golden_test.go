package status_test

import (
	"context"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

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

// volatile are the JSON keys whose values differ between runs, backends
// or schema versions (the tests check those values themselves).
func volatile(key string) bool {
	switch key {
	case "seen", "token", "ttl_ms", "driver", "schema_current", "schema_latest":
		return true
	}
	return false
}
