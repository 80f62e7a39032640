package smtpserver

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// clientKey is the unit per-client limits count in: an IPv4 address on
// its own (/32), an IPv6 address by its /64 (one customer's allocation, all
// of which a single host can use), an IPv4-mapped IPv6 address as the IPv4
// address. The zero Addr (a connection that is not IP) gives the zero
// Prefix, which is one key like any other.
func clientKey(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// parseNetworks parses a list of IP addresses and CIDR ranges (the form of
// smtp_server.proxy_protocol_trusted) as SMTP-IP credentials' keys are
// parsed; key names the list in errors.
func parseNetworks(key string, list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		p, ok := parseRange(s)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: %q is not an IP address or CIDR range", key, i, s)
		}
		out = append(out, p)
	}
	return out, nil
}

// inNetworks reports whether ip is in one of nets.
func inNetworks(nets []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// failureWindow counts failed AUTH attempts per client key over a sliding
// window, in memory (each smtp-server process counts its own; the shared
// Redis window is Options.AuthFailures). An attempt is reserved before the
// password is checked (acquire, which refuses once the limit is reached)
// and given back if it succeeds (release), so concurrent attempts cannot
// all pass a check made before any of them was counted.
type failureWindow struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	next   uint64
	byKey  map[netip.Prefix][]attempt
}

// attempt is one reserved AUTH attempt.
type attempt struct {
	at time.Time
	id uint64
}

func newFailureWindow(limit int, window time.Duration, now func() time.Time) *failureWindow {
	return &failureWindow{max: limit, window: window, now: now, byKey: map[netip.Prefix][]attempt{}}
}

// blocked reports whether key has max attempts counted within the window.
func (w *failureWindow) blocked(key netip.Prefix) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.recent(key, w.now())) >= w.max
}

// acquire counts one attempt for key unless key already has max within
// the window; it returns the attempt's id for release, and false (nothing
// counted) when the limit is reached.
func (w *failureWindow) acquire(key netip.Prefix) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if len(w.recent(key, now)) >= w.max {
		return 0, false
	}
	w.next++
	w.byKey[key] = append(w.byKey[key], attempt{at: now, id: w.next})
	if len(w.byKey) > maxCacheEntries {
		for k := range w.byKey {
			w.recent(k, now)
		}
		// Still full of recent attempts (many clients): forget arbitrary
		// other ones; Options.AuthFailures still counts them in Redis.
		for k := range w.byKey {
			if len(w.byKey) < maxCacheEntries*9/10 {
				break
			}
			if k != key {
				delete(w.byKey, k)
			}
		}
	}
	return w.next, true
}

// release forgets the attempt acquire returned id for (one that did not
// fail after all); an attempt already out of the window is ignored.
func (w *failureWindow) release(key netip.Prefix, id uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.byKey[key]
	for i, a := range list {
		if a.id == id {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.byKey, key)
		return
	}
	w.byKey[key] = list
}

// recent drops key's attempts older than the window and returns the rest.
func (w *failureWindow) recent(key netip.Prefix, now time.Time) []attempt {
	list := w.byKey[key]
	cut := 0
	for cut < len(list) && now.Sub(list[cut].at) >= w.window {
		cut++
	}
	list = list[cut:]
	if len(list) == 0 {
		delete(w.byKey, key)
		return nil
	}
	w.byKey[key] = list
	return list
}
