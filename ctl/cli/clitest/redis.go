package clitest

import (
	"context"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

// Redis connects to the Redis of the Env's configuration (its private key
// prefix) and deletes every key under that prefix when the test ends.
func (e *Env) Redis(t *testing.T) (redis.UniversalClient, redisconn.Keys) {
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

// ClosedRedisURL returns a Redis URL where nothing listens, for tests of
// what commands do when Redis is down.
func ClosedRedisURL(t *testing.T) string {
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
