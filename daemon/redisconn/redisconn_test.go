package redisconn_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

func TestNewChoosesTheClientFromOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    redisconn.Options
		want    string // "single", "cluster" or an error substring
		wantErr bool
	}{
		{name: "redis url is a single node", opts: redisconn.Options{URL: "redis://:pw@127.0.0.1:6379/2"}, want: "single"},
		{name: "rediss url is a single node", opts: redisconn.Options{URL: "rediss://redis.example:6380"}, want: "single"},
		{name: "unix url is a single node", opts: redisconn.Options{URL: "unix:///run/redis.sock?db=1"}, want: "single"},
		{name: "one addr is a single node", opts: redisconn.Options{Addrs: []string{"127.0.0.1:6379"}}, want: "single"},
		{name: "several addrs are a cluster", opts: redisconn.Options{Addrs: []string{"a:1", "b:2"}}, want: "cluster"},
		{name: "a master name is sentinel", opts: redisconn.Options{Addrs: []string{"a:26379", "b:26379"}, MasterName: "mymaster"}, want: "single"},
		{name: "bad scheme", opts: redisconn.Options{URL: "http://127.0.0.1"}, want: "parse url", wantErr: true},
		{name: "bad database", opts: redisconn.Options{URL: "redis://127.0.0.1/x"}, want: "parse url", wantErr: true},
		{name: "password is not echoed", opts: redisconn.Options{URL: "redis://u:secret@127.0.0.1/x"}, want: "u:xxxxx@", wantErr: true},
		{name: "both url and addrs", opts: redisconn.Options{URL: "redis://a", Addrs: []string{"b:1"}}, want: "not both", wantErr: true},
		{name: "neither url nor addrs", opts: redisconn.Options{}, want: "neither", wantErr: true},
		{name: "database on a cluster", opts: redisconn.Options{Addrs: []string{"a:1", "b:2"}, DB: 3}, want: "cluster", wantErr: true},
		{name: "negative pool size", opts: redisconn.Options{URL: "redis://a", PoolSize: -1}, want: "negative", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redisconn.New(tt.opts)
			if tt.wantErr {
				if err == nil {
					_ = c.Close()
					t.Fatalf("New(%+v) = nil error, want one containing %q", tt.opts, tt.want)
				}
				if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
					t.Fatalf("New error = %q, want it to contain %q and no password", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%+v): %v", tt.opts, err)
			}
			defer c.Close()
			got := "single"
			if _, ok := c.(*redis.ClusterClient); ok {
				got = "cluster"
			}
			if got != tt.want {
				t.Fatalf("New(%+v) built a %s client, want %s", tt.opts, got, tt.want)
			}
		})
	}
}

func TestNewAppliesOverridesToTheURL(t *testing.T) {
	c, err := redisconn.New(redisconn.Options{URL: "redis://u:p@127.0.0.1:6379/2", Password: "q", DB: 5, PoolSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.(*redis.Client).Options()
	if o.Username != "u" || o.Password != "q" || o.DB != 5 || o.PoolSize != 7 {
		t.Fatalf("options = user %q pass %q db %d pool %d, want u q 5 7", o.Username, o.Password, o.DB, o.PoolSize)
	}
}

func TestKeysShareOneHashTag(t *testing.T) {
	tests := []struct {
		name, prefix    string
		parts           []string
		key, pfx, match string
	}{
		{name: "plain", prefix: "postal", parts: []string{"stream", "outgoing"}, key: "{postal}:stream:outgoing", pfx: "{postal}:", match: "{postal}:stream:outgoing*"},
		{name: "empty prefix is the default", prefix: "", parts: []string{"retry"}, key: "{postal}:retry", pfx: "{postal}:", match: "{postal}:retry*"},
		{name: "braces are stripped", prefix: "{a}b}", parts: []string{"x"}, key: "{ab}:x", pfx: "{ab}:", match: "{ab}:x*"},
		{name: "glob characters are escaped", prefix: "p*[1]", parts: []string{"hb", ""}, key: "{p*[1]}:hb:", pfx: "{p*[1]}:", match: `{p\*\[1\]}:hb:*`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := redisconn.NewKeys(tt.prefix)
			if got := k.Key(tt.parts...); got != tt.key {
				t.Errorf("Key(%q) = %q, want %q", tt.parts, got, tt.key)
			}
			if got := k.Prefix(); got != tt.pfx {
				t.Errorf("Prefix() = %q, want %q", got, tt.pfx)
			}
			if got := k.Pattern(tt.parts...); got != tt.match {
				t.Errorf("Pattern(%q) = %q, want %q", tt.parts, got, tt.match)
			}
		})
	}
}

func TestPingAndScanAgainstRealRedis(t *testing.T) {
	c, keys := redistest.New(t)
	ctx := context.Background()
	if err := redisconn.Ping(ctx, c); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	want := []string{keys.Key("a"), keys.Key("hb", "h1:1"), keys.Key("hb", "h2:2")}
	for _, k := range want {
		if err := c.Set(ctx, k, "1", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := redisconn.ScanKeys(ctx, c, keys.Pattern("hb", ""))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want[1:]) {
		t.Fatalf("ScanKeys(hb:*) = %q, want %q", got, want[1:])
	}
	if err := redistest.DeleteAll(ctx, c, keys); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx, want...).Result(); err != nil || n != 0 {
		t.Fatalf("after DeleteAll %d keys exist (err %v), want 0", n, err)
	}
}

func TestPingFailsWhenRedisIsGone(t *testing.T) {
	srv := redistest.StartServer(t)
	c, err := redisconn.New(redisconn.Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := redisconn.Ping(ctx, c); err != nil {
		t.Fatalf("Ping before kill: %v", err)
	}
	srv.Kill()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := redisconn.Ping(ctx, c); err == nil || !strings.Contains(err.Error(), "redis: ping") {
		t.Fatalf("Ping after kill = %v, want a wrapped error", err)
	}
	// A command that checks the prefix before writing is not refused.
	if err := redisconn.CheckPrefix(ctx, c, redisconn.NewKeys("gone"), "aaaa"); err != nil {
		t.Fatalf("CheckPrefix with Redis gone = %v, want nil", err)
	}
}

// The redis section's url has a default; addrs (with master_name for
// Sentinel) must win over it, or a Cluster or Sentinel configuration
// would be refused as "both a url and addrs".
func TestOptionsFromPrefersAddrsOverTheDefaultURL(t *testing.T) {
	d := config.Defaults().Redis
	if d.URL == "" {
		t.Fatal("the default redis url is empty; this test assumes one")
	}
	cluster := d
	cluster.Addrs = []string{"127.0.0.1:7000", "127.0.0.1:7001"}
	sentinel := cluster
	sentinel.MasterName = "mymaster"
	for _, tt := range []struct {
		name    string
		in      config.Redis
		wantURL string
		kind    string
	}{
		{"url only", d, d.URL, "*redis.Client"},
		{"cluster", cluster, "", "*redis.ClusterClient"},
		{"sentinel", sentinel, "", "*redis.Client"},
	} {
		o := redisconn.OptionsFrom(tt.in)
		if o.URL != tt.wantURL || !slices.Equal(o.Addrs, tt.in.Addrs) || o.MasterName != tt.in.MasterName {
			t.Fatalf("%s: OptionsFrom = %+v", tt.name, o)
		}
		c, err := redisconn.New(o)
		if err != nil {
			t.Fatalf("%s: New: %v", tt.name, err)
		}
		if got := fmt.Sprintf("%T", c); got != tt.kind {
			t.Errorf("%s: client %s, want %s", tt.name, got, tt.kind)
		}
		_ = c.Close()
	}
}

// The first installation to claim a prefix owns it; another is refused
// with both ids; a lost owner key is claimed again by whoever comes first;
// a reset deletes every key of the prefix and hands it over.
func TestPrefixBelongsToOneInstallation(t *testing.T) {
	c, keys := redistest.New(t)
	ctx := context.Background()
	if got := keys.Name(); "{"+got+"}:" != keys.Prefix() {
		t.Fatalf("Name() = %q, Prefix() = %q", got, keys.Prefix())
	}
	if owner, err := redisconn.PrefixOwner(ctx, c, keys); err != nil || owner != "" {
		t.Fatalf("owner of a fresh prefix = %q, %v", owner, err)
	}
	if err := redisconn.CheckPrefix(ctx, c, keys, "bbbb"); err != nil {
		t.Fatalf("check of an unclaimed prefix: %v", err)
	}
	for range 2 {
		if err := redisconn.ClaimPrefix(ctx, c, keys, "aaaa"); err != nil {
			t.Fatalf("claim by the owner: %v", err)
		}
	}
	err := redisconn.ClaimPrefix(ctx, c, keys, "bbbb")
	var taken *redisconn.PrefixTakenError
	if !errors.As(err, &taken) || taken.Owner != "aaaa" || taken.Installation != "bbbb" || taken.Prefix != keys.Name() {
		t.Fatalf("claim by another installation = %v, want a PrefixTakenError naming aaaa and bbbb", err)
	}
	if err := redisconn.CheckPrefix(ctx, c, keys, "aaaa"); err != nil {
		t.Fatalf("check by the owner: %v", err)
	}
	if err := redisconn.CheckPrefix(ctx, c, keys, "bbbb"); !errors.As(err, &taken) || taken.Owner != "aaaa" {
		t.Fatalf("check by another installation = %v, want a PrefixTakenError", err)
	}
	if !strings.Contains(err.Error(), "redis.key_prefix") || !strings.Contains(err.Error(), "postalctl queue reset") {
		t.Errorf("error does not say what to do: %v", err)
	}

	// Redis lost its keys: the first installation to come claims it.
	if err := redistest.DeleteAll(ctx, c, keys); err != nil {
		t.Fatal(err)
	}
	if err := redisconn.ClaimPrefix(ctx, c, keys, "bbbb"); err != nil {
		t.Fatalf("claim after the owner key was lost: %v", err)
	}

	for _, k := range []string{keys.Key("stream", "outgoing"), keys.Key("inflight"), keys.Key("lease", "cron")} {
		if err := c.Set(ctx, k, "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	other := redisconn.NewKeys(keys.Name() + "-other")
	if err := c.Set(ctx, other.Key("inflight"), "x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Del(context.Background(), other.Key("inflight")) })
	n, err := redisconn.ResetPrefix(ctx, c, keys, "aaaa")
	if err != nil || n != 4 {
		t.Fatalf("reset = %d keys, %v; want the 3 keys and the owner key", n, err)
	}
	left, err := redisconn.ScanKeys(ctx, c, keys.Pattern())
	if err != nil || !slices.Equal(left, []string{keys.Key("installation")}) {
		t.Fatalf("keys after reset = %v, %v; want only the owner key", left, err)
	}
	if owner, err := redisconn.PrefixOwner(ctx, c, keys); err != nil || owner != "aaaa" {
		t.Fatalf("owner after reset = %q, %v", owner, err)
	}
	if c.Exists(ctx, other.Key("inflight")).Val() != 1 {
		t.Error("reset deleted a key of another prefix")
	}
	if err := redisconn.ClaimPrefix(ctx, c, keys, "bbbb"); !errors.As(err, &taken) {
		t.Fatalf("former owner's claim after reset = %v, want refused", err)
	}
}
