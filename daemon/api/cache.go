package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/postalgo/postal/daemon/store"
)

// maxCacheEntries bounds the cache; past it expired entries are swept, and
// if that is not enough it starts over.
const maxCacheEntries = 20000

// cache keeps credentials (by key hash, never by key) and server domains
// for a short time, so a busy client costs no query per request for them.
// "Not found" is cached too. Concurrent misses share one query.
type cache struct {
	ttl    time.Duration
	now    func() time.Time
	flight singleflight.Group

	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	val      any
	notFound bool
	expires  time.Time
}

func newCache(ttl time.Duration, now func() time.Time) *cache {
	return &cache{ttl: ttl, now: now, entries: map[string]cacheEntry{}}
}

func (c *cache) get(key string) (cacheEntry, bool) {
	if c.ttl <= 0 {
		return cacheEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.now().Before(e.expires) {
		return cacheEntry{}, false
	}
	return e, true
}

func (c *cache) put(key string, e cacheEntry) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCacheEntries {
		now := c.now()
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[key] = e
}

// load returns key's value, loading it when missing or expired; found is
// false when the loader reported store.ErrNotFound.
func load[T any](ctx context.Context, c *cache, key string, fn func(context.Context) (T, error)) (val T, found bool, err error) {
	e, ok := c.get(key)
	if !ok {
		v, err, _ := c.flight.Do(key, func() (any, error) {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			v, err := fn(lctx)
			if errors.Is(err, store.ErrNotFound) {
				e := cacheEntry{notFound: true, expires: c.now().Add(c.ttl)}
				c.put(key, e)
				return e, nil
			}
			if err != nil {
				return nil, err
			}
			e := cacheEntry{val: v, expires: c.now().Add(c.ttl)}
			c.put(key, e)
			return e, nil
		})
		if err != nil {
			return val, false, fmt.Errorf("lookup %s: %w", key, err)
		}
		e = v.(cacheEntry)
	}
	if e.notFound {
		return val, false, nil
	}
	return e.val.(T), true, nil
}

// credential finds the API credential whose key is key.
func (c *cache) credential(ctx context.Context, st Store, key string) (*store.APIAuth, bool, error) {
	return load(ctx, c, "cred:"+store.HashKey(key), func(ctx context.Context) (*store.APIAuth, error) {
		return st.APICredential(ctx, key)
	})
}

// domains lists a server's domains.
func (c *cache) domains(ctx context.Context, st Store, serverID int64) ([]*store.Domain, error) {
	ds, _, err := load(ctx, c, "domains:"+strconv.FormatInt(serverID, 10), func(ctx context.Context) ([]*store.Domain, error) {
		return st.Domains(ctx, serverID)
	})
	return ds, err
}

// ptrTTL is how long a client's reverse DNS name is remembered (at least
// the cache's TTL).
const ptrTTL = 5 * time.Minute

// reverseName is ip's host name by reverse DNS, or ip itself when it has
// none or the lookup fails; one lookup per address per ptrTTL.
func (c *cache) reverseName(ctx context.Context, ip string, timeout time.Duration,
	lookup func(ctx context.Context, addr string) ([]string, error)) string {
	key := "ptr:" + ip
	if e, ok := c.get(key); ok {
		return e.val.(string)
	}
	v, _, _ := c.flight.Do(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		name := ip
		if names, err := lookup(lctx, ip); err == nil && len(names) > 0 {
			if n := hostText(names[0]); n != "" {
				name = n
			}
		}
		if c.ttl > 0 {
			c.put(key, cacheEntry{val: name, expires: c.now().Add(max(c.ttl, ptrTTL))})
		}
		return name, nil
	})
	return v.(string)
}

// hostText keeps the characters of a host name that may appear in a
// Received field.
func hostText(s string) string {
	s = strings.TrimSuffix(s, ".")
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 255; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' {
			b.WriteByte(c)
		}
	}
	return b.String()
}
