package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/postalgo/postal/daemon/redisconn"
)

// prefixCheckEvery is how often a running process checks that its
// installation still owns redis.key_prefix (after a Redis that lost its
// keys, another installation may have claimed it first).
const prefixCheckEvery = 10 * time.Second

// claimPrefix records this installation as the owner of the key prefix
// before any role touches Redis. Another owner is a configuration error:
// postald does not start. A Redis that does not answer is not: the
// prefix guard claims the prefix once Redis is back.
func claimPrefix(ctx context.Context, d *deps, installation string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := redisconn.ClaimPrefix(cctx, d.redis, d.keys, installation)
	var taken *redisconn.PrefixTakenError
	if errors.As(err, &taken) {
		return &usageError{err}
	}
	if err != nil {
		d.log.Warn("could not check that this installation owns the redis key prefix; checking again when redis answers",
			"prefix", d.keys.Name(), "err", err)
	}
	return nil
}

// prefixGuard is the role that keeps checking the prefix's owner. It
// fails, and so stops the process, when another installation owns it.
func prefixGuard(d *deps, installation string) role {
	return role{name: "redis-prefix-guard", run: func(ctx context.Context) error {
		t := time.NewTicker(prefixCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := redisconn.ClaimPrefix(cctx, d.redis, d.keys, installation)
			cancel()
			var taken *redisconn.PrefixTakenError
			if errors.As(err, &taken) {
				return err
			}
			// Any other error is Redis not answering: /ready says so.
		}
	}}
}
