// Package redisconn builds the project's single go-redis client and names every
// Redis key the project owns.
//
// Contract: New returns a redis.UniversalClient for one node (from a URL), a
// Sentinel-managed master or a Cluster, chosen only from Options; it never
// dials eagerly, so use Ping to check reachability. Every key built by Keys
// starts with "{prefix}:", so all of the project's keys share one Cluster hash
// slot and a Lua script may touch any of them; Prefix and Pattern let an
// operator or a test find and delete exactly the keys the project owns.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/config"
)

// Options selects and configures a Redis deployment. Exactly one of URL and
// Addrs must be set.
type Options struct {
	// URL addresses a single node: redis://, rediss:// (TLS) or unix://, in the
	// syntax of redis.ParseURL.
	URL string
	// Addrs are Sentinel addresses when MasterName is set, Cluster seed nodes
	// when there are several, else the address of a single node.
	Addrs []string
	// MasterName is the Sentinel master name; it selects Sentinel mode.
	MasterName string
	// Username and Password authenticate to Redis. With a URL they override
	// the URL's credentials when non-empty.
	Username, Password string
	// DB selects the logical database (not available under Cluster). With a
	// URL it overrides the URL's database when non-zero.
	DB int
	// PoolSize bounds the connections per node; zero keeps go-redis' default.
	PoolSize int
}

// OptionsFrom returns the options for the redis section r. The url, which
// has a default, is used only when addrs is empty: addrs (with master_name
// for Sentinel) select Sentinel or Cluster over it.
func OptionsFrom(r config.Redis) Options {
	o := Options{URL: r.URL, Addrs: r.Addrs, MasterName: r.MasterName, Username: r.Username,
		Password: r.Password, DB: r.DB, PoolSize: r.PoolSize}
	if len(o.Addrs) > 0 {
		o.URL = ""
	}
	return o
}

// New returns a client for the deployment described by o. It does not
// contact Redis. It returns a wrapped error when o sets both or neither of
// URL and Addrs, when the URL does not parse, or when a DB is asked of a
// Cluster.
func New(o Options) (redis.UniversalClient, error) {
	switch {
	case o.URL != "" && len(o.Addrs) > 0:
		return nil, errors.New("redis: set either a url or addrs, not both")
	case o.URL == "" && len(o.Addrs) == 0:
		return nil, errors.New("redis: neither a url nor addrs is set")
	case o.PoolSize < 0:
		return nil, fmt.Errorf("redis: pool size %d is negative", o.PoolSize)
	case o.DB < 0:
		return nil, fmt.Errorf("redis: database %d is negative", o.DB)
	}
	if o.URL != "" {
		opts, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("redis: parse url %q: %w", redactURL(o.URL), err)
		}
		if o.Username != "" {
			opts.Username = o.Username
		}
		if o.Password != "" {
			opts.Password = o.Password
		}
		if o.DB != 0 {
			opts.DB = o.DB
		}
		if o.PoolSize != 0 {
			opts.PoolSize = o.PoolSize
		}
		return redis.NewClient(opts), nil
	}
	if o.MasterName == "" && len(o.Addrs) > 1 && o.DB != 0 {
		return nil, fmt.Errorf("redis: database %d cannot be selected on a cluster", o.DB)
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:      o.Addrs,
		MasterName: o.MasterName,
		Username:   o.Username,
		Password:   o.Password,
		DB:         o.DB,
		PoolSize:   o.PoolSize,
	}), nil
}

// redactURL hides a password in u so that it can be quoted in an error.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return u
}

// Ping checks that Redis answers. It returns a wrapped error when it does not.
func Ping(ctx context.Context, c redis.UniversalClient) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}

// Keys names keys under one prefix. The zero value is not useful; build it
// with NewKeys. Keys is a value type and safe for concurrent use.
type Keys struct {
	prefix string // "{name}:"
}

// DefaultPrefix is the prefix NewKeys uses when given an empty one.
const DefaultPrefix = "postal"

// NewKeys returns the key namer for prefix. Braces are removed from prefix
// (they would break the hash tag) and an empty prefix becomes DefaultPrefix.
func NewKeys(prefix string) Keys {
	prefix = strings.NewReplacer("{", "", "}", "").Replace(prefix)
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Keys{prefix: "{" + prefix + "}:"}
}

// Key returns "{prefix}:part1:part2...".
func (k Keys) Key(parts ...string) string {
	return k.prefix + strings.Join(parts, ":")
}

// Prefix returns "{prefix}:", the start of every key built by k.
func (k Keys) Prefix() string {
	return k.prefix
}

// Name returns the prefix without its braces and colon, as configured.
func (k Keys) Name() string {
	return k.prefix[1 : len(k.prefix)-2]
}

// Pattern returns a SCAN MATCH pattern for every key that starts with
// Key(parts...), with glob metacharacters in the prefix and parts escaped.
// Pattern() matches every key built by k.
func (k Keys) Pattern(parts ...string) string {
	lit := k.prefix
	if len(parts) > 0 {
		lit = k.Key(parts...)
	}
	var b strings.Builder
	for _, r := range lit {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('*')
	return b.String()
}

// ScanKeys returns every key matching pattern. Under Cluster it scans every
// master. It returns a wrapped error when a SCAN fails.
func ScanKeys(ctx context.Context, c redis.UniversalClient, pattern string) ([]string, error) {
	scanOne := func(ctx context.Context, node redis.UniversalClient) ([]string, error) {
		var keys []string
		var cursor uint64
		for {
			batch, next, err := node.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return nil, fmt.Errorf("redis: scan %q: %w", pattern, err)
			}
			keys = append(keys, batch...)
			if next == 0 {
				return keys, nil
			}
			cursor = next
		}
	}
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return scanOne(ctx, c)
	}
	var (
		mu  sync.Mutex
		all []string
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		ks, err := scanOne(ctx, node)
		if err != nil {
			return err
		}
		mu.Lock()
		all = append(all, ks...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}
