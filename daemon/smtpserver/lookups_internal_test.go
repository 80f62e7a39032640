package smtpserver

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
)

// TestLookupCacheIsBounded: misses are cached like hits, but the cache never
// holds more than maxCacheEntries keys, never a key over maxCacheKey bytes,
// and expired entries go within one TTL even when the cache is not full.
func TestLookupCacheIsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLookups(nil, 5*time.Second, func() time.Time { return now })
	ctx := context.Background()
	loads := 0
	miss := func(context.Context) (int, error) { loads++; return 0, store.ErrNotFound }

	if _, found, err := cached(l, ctx, "route:"+strings.Repeat("a", maxCacheKey), miss); found || err != nil {
		t.Fatalf("found %v err %v", found, err)
	}
	if l.size() != 0 {
		t.Fatalf("a %d-byte key was cached", maxCacheKey+6)
	}

	for i := range maxCacheEntries + 5000 {
		if _, _, err := cached(l, ctx, "route:"+strconv.Itoa(i), miss); err != nil {
			t.Fatal(err)
		}
		if n := l.size(); n > maxCacheEntries {
			t.Fatalf("%d entries after %d keys, over the bound %d", n, i+1, maxCacheEntries)
		}
	}
	// A key still cached is answered without a load.
	before := loads
	if _, _, err := cached(l, ctx, "route:"+strconv.Itoa(maxCacheEntries+4999), miss); err != nil || loads != before {
		t.Fatalf("the newest key was loaded again (err %v)", err)
	}

	// Once the TTL has passed, the next put sweeps every expired entry.
	now = now.Add(6 * time.Second)
	if _, _, err := cached(l, ctx, "route:fresh", miss); err != nil {
		t.Fatal(err)
	}
	if n := l.size(); n != 1 {
		t.Fatalf("%d entries after every other one expired, want 1", n)
	}
}

func TestBudgetReservesAndReleases(t *testing.T) {
	b := newBudget(100, 1, nil)
	if b.max != 2+4*readChunk+64<<10 {
		t.Fatalf("budget raised to %d", b.max)
	}
	b = &budget{max: 100}
	h1, h2 := &hold{b: b}, &hold{b: b}
	if !h1.grow(60) || h2.grow(41) || !h2.grow(40) {
		t.Fatal("reservations do not add up to the budget")
	}
	h1.release()
	h1.release() // twice is harmless
	if b.used.Load() != 40 || !h2.grow(60) || h2.grow(1) {
		t.Fatalf("after release: used %d", b.used.Load())
	}
	h2.release()
	if b.used.Load() != 0 {
		t.Fatalf("used %d after every release", b.used.Load())
	}
}

func TestFailureWindowIsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	w := newFailureWindow(3, time.Hour, func() time.Time { return now })
	one := netip.MustParsePrefix("2001:db8::/64")
	granted := 0
	for range 100 {
		if _, ok := w.acquire(one); ok {
			granted++
		}
	}
	if n := len(w.byKey[one]); granted != 3 || n != 3 {
		t.Fatalf("%d attempts granted, %d kept for one client, want 3 and 3", granted, n)
	}
	for i := range maxCacheEntries + 100 {
		p := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 6: byte(i >> 8), 7: byte(i)}), 64)
		w.acquire(p)
		if len(w.byKey) > maxCacheEntries+1 {
			t.Fatalf("%d clients kept", len(w.byKey))
		}
	}
}
