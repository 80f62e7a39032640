package smtpserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/postalgo/postal/daemon/store"
)

const (
	// maxCacheEntries bounds the lookup cache (and the other per-key maps
	// of the server). Expired entries are swept once per TTL, and whenever
	// the cache is full; if it is still full, a tenth of it is evicted.
	maxCacheEntries = 20000
	// maxCacheKey bounds the length of a cached key: a longer one is looked
	// up but not cached. Recipients are checked against RFC 5321 lengths
	// before any lookup, so no legitimate key comes near it.
	maxCacheKey = 512
	// lookupTimeout bounds one database lookup.
	lookupTimeout = 10 * time.Second
	// touchEvery is how often a credential's last_used_at is written.
	touchEvery = time.Minute
)

// lookups answers the questions sessions ask the database, caching every
// answer (including "not found") for ttl so that a busy server asks once
// per ttl rather than once per command. Concurrent misses for one key share
// one query. Cached records are shared: callers must not modify them.
type lookups struct {
	st     Store
	ttl    time.Duration
	now    func() time.Time
	flight singleflight.Group

	mu        sync.Mutex
	entries   map[string]cacheEntry
	nextSweep time.Time

	touchMu sync.Mutex
	touched map[int64]time.Time
}

type cacheEntry struct {
	val      any
	notFound bool
	expires  time.Time
}

func newLookups(st Store, ttl time.Duration, now func() time.Time) *lookups {
	return &lookups{st: st, ttl: ttl, now: now, entries: map[string]cacheEntry{}, touched: map[int64]time.Time{}}
}

// cached returns the value for key, loading it when missing or expired.
// found is false (with a nil error) when the loader reported
// store.ErrNotFound. Other loader errors are returned and not cached.
func cached[T any](l *lookups, ctx context.Context, key string, load func(context.Context) (T, error)) (val T, found bool, err error) {
	if e, ok := l.get(key); ok {
		if e.notFound {
			return val, false, nil
		}
		return e.val.(T), true, nil
	}
	v, err, _ := l.flight.Do(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		v, err := load(lctx)
		if errors.Is(err, store.ErrNotFound) {
			e := cacheEntry{notFound: true, expires: l.now().Add(l.ttl)}
			l.put(key, e)
			return e, nil
		}
		if err != nil {
			return nil, err
		}
		e := cacheEntry{val: v, expires: l.now().Add(l.ttl)}
		l.put(key, e)
		return e, nil
	})
	if err != nil {
		return val, false, fmt.Errorf("lookup %s: %w", key, err)
	}
	e := v.(cacheEntry)
	if e.notFound {
		return val, false, nil
	}
	return e.val.(T), true, nil
}

func (l *lookups) get(key string) (cacheEntry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if !ok || !l.now().Before(e.expires) {
		return cacheEntry{}, false
	}
	return e, true
}

// put caches e under key, keeping the cache within maxCacheEntries keys of
// at most maxCacheKey bytes.
func (l *lookups) put(key string, e cacheEntry) {
	if len(key) > maxCacheKey {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.entries) >= maxCacheEntries || !now.Before(l.nextSweep) {
		for k, old := range l.entries {
			if !now.Before(old.expires) {
				delete(l.entries, k)
			}
		}
		l.nextSweep = now.Add(l.ttl)
	}
	if len(l.entries) >= maxCacheEntries {
		// Map order is random: this evicts arbitrary live entries, so a
		// flood of new keys costs one sweep per tenth of the cache.
		for k := range l.entries {
			delete(l.entries, k)
			if len(l.entries) < maxCacheEntries*9/10 {
				break
			}
		}
	}
	l.entries[key] = e
}

// size is the number of cached entries.
func (l *lookups) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// credentialByKey finds the SMTP credential whose key is password. The
// cache is keyed by the key's hash, never by the key.
func (l *lookups) credentialByKey(ctx context.Context, password string) (*store.Credential, bool, error) {
	return cached(l, ctx, "cred:"+store.HashKey(password), func(ctx context.Context) (*store.Credential, error) {
		return l.st.CredentialByKey(ctx, store.CredentialSMTP, password)
	})
}

func (l *lookups) server(ctx context.Context, id int64) (*store.Server, bool, error) {
	return cached(l, ctx, "server:"+strconv.FormatInt(id, 10), func(ctx context.Context) (*store.Server, error) {
		return l.st.ServerByID(ctx, id)
	})
}

func (l *lookups) serverByToken(ctx context.Context, token string) (*store.Server, bool, error) {
	return cached(l, ctx, "server-token:"+token, func(ctx context.Context) (*store.Server, error) {
		return l.st.ServerByToken(ctx, token)
	})
}

// domains lists a server's domains sorted by name.
func (l *lookups) domains(ctx context.Context, serverID int64) ([]*store.Domain, error) {
	ds, _, err := cached(l, ctx, "domains:"+strconv.FormatInt(serverID, 10), func(ctx context.Context) ([]*store.Domain, error) {
		ds, err := l.st.Domains(ctx, serverID)
		if err != nil {
			return nil, err
		}
		sorted := append([]*store.Domain(nil), ds...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
		return sorted, nil
	})
	return ds, err
}

// isOurDomain reports whether a verified domain of any server is called
// name.
func (l *lookups) isOurDomain(ctx context.Context, name string) (bool, error) {
	ours, _, err := cached(l, ctx, "domain-named:"+name, func(ctx context.Context) (bool, error) {
		ds, err := l.st.DomainsNamed(ctx, name)
		if err != nil {
			return false, err
		}
		for _, d := range ds {
			if d.Verified() {
				return true, nil
			}
		}
		return false, nil
	})
	return ours, err
}

func (l *lookups) routeByToken(ctx context.Context, token string) (*store.Route, bool, error) {
	return cached(l, ctx, "route-token:"+token, func(ctx context.Context) (*store.Route, error) {
		return l.st.RouteByToken(ctx, token)
	})
}

func (l *lookups) returnPathRoute(ctx context.Context, serverID int64) (*store.Route, bool, error) {
	return cached(l, ctx, "route-rp:"+strconv.FormatInt(serverID, 10), func(ctx context.Context) (*store.Route, error) {
		return l.st.ReturnPathRoute(ctx, serverID)
	})
}

func (l *lookups) routeForAddress(ctx context.Context, localPart, domain string) (*store.Route, bool, error) {
	return cached(l, ctx, "route:"+localPart+"@"+domain, func(ctx context.Context) (*store.Route, error) {
		return l.st.RouteForAddress(ctx, localPart, domain)
	})
}

// ipCredential is an SMTP-IP credential with its parsed range.
type ipCredential struct {
	prefix netip.Prefix
	cred   *store.Credential
}

// smtpIPCredential finds the SMTP-IP credential whose range holds ip, the
// most specific range first (as Postal sorts them). Ranges that do not
// parse never match.
func (l *lookups) smtpIPCredential(ctx context.Context, ip netip.Addr) (*store.Credential, bool, error) {
	ranges, _, err := cached(l, ctx, "smtp-ip", func(ctx context.Context) ([]ipCredential, error) {
		creds, err := l.st.Credentials(ctx, 0, store.CredentialSMTPIP)
		if err != nil {
			return nil, err
		}
		out := make([]ipCredential, 0, len(creds))
		for _, c := range creds {
			if p, ok := parseRange(c.CIDR); ok {
				out = append(out, ipCredential{prefix: p, cred: c})
			}
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].prefix.Bits() > out[j].prefix.Bits() })
		return out, nil
	})
	if err != nil || !ip.IsValid() {
		return nil, false, err
	}
	ip = ip.Unmap()
	for _, r := range ranges {
		if r.prefix.Contains(ip) {
			return r.cred, true, nil
		}
	}
	return nil, false, nil
}

// parseRange reads an SMTP-IP credential's key: an address or a CIDR range.
func parseRange(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr()))
		return p.Masked(), p.IsValid()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// unmapBits is how many prefix bits an IPv4-mapped address loses when
// written as IPv4.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// touch records that a credential was used, at most once per touchEvery
// per credential, so that busy sessions do not write per message.
func (l *lookups) touch(ctx context.Context, c *store.Credential) error {
	now := l.now()
	l.touchMu.Lock()
	if last, ok := l.touched[c.ID]; ok && now.Sub(last) < touchEvery {
		l.touchMu.Unlock()
		return nil
	}
	l.touched[c.ID] = now
	if len(l.touched) > maxCacheEntries {
		clear(l.touched)
	}
	l.touchMu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
	defer cancel()
	return l.st.TouchCredential(ctx, c.ID)
}
