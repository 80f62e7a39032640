// Package forwarded finds an HTTP request's client behind trusted reverse
// proxies (postal.trusted_proxies), for the API's Received header and rate
// limits and for tracking records.
//
// Contract: ClientIP never trusts X-Forwarded-For from a peer outside the
// trusted networks, reads at most MaxHops entries of it, and returns the
// zero Addr only when the request's own remote address does not parse.
package forwarded

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// MaxHops bounds how many X-Forwarded-For entries ClientIP reads, from the
// end.
const MaxHops = 20

// ClientIP returns the request's client: its remote address, or, when that
// is in trusted, the last X-Forwarded-For address not itself trusted (the
// last one read when all are trusted, the proxy's own address when an
// entry does not parse). IPv4-mapped IPv6 addresses are returned as IPv4.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	ip = ip.Unmap()
	if !contains(trusted, ip) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0 && i >= len(hops)-MaxHops; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip
		}
		a = a.Unmap()
		if !contains(trusted, a) {
			return a
		}
		ip = a
	}
	return ip
}

func contains(nets []netip.Prefix, ip netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
