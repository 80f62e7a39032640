package forwarded_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/postalgo/postal/daemon/forwarded"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	many := strings.Repeat("10.0.0.9, ", 30) + "10.0.0.8"
	for _, tc := range []struct {
		name, remote, xff, want string
	}{
		{"direct client, header ignored", "192.0.2.1:5000", "198.51.100.7", "192.0.2.1"},
		{"trusted proxy names the client", "10.0.0.2:5000", "198.51.100.7", "198.51.100.7"},
		{"the last untrusted hop wins", "10.0.0.2:5000", "203.0.113.5, 198.51.100.7, 10.0.0.3", "198.51.100.7"},
		{"trusted proxy without the header", "[::1]:5000", "", "::1"},
		{"a bad entry stops at the proxy", "10.0.0.2:5000", "198.51.100.7, junk", "10.0.0.2"},
		{"all trusted: the last read", "10.0.0.2:5000", "10.0.0.3", "10.0.0.3"},
		{"at most MaxHops read", "10.0.0.2:5000", "198.51.100.7, " + many, "10.0.0.9"},
		{"mapped IPv4", "[::ffff:192.0.2.1]:5000", "", "192.0.2.1"},
		{"unparsable remote", "nonsense", "", "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			if tc.xff != "" {
				r.Header.Add("X-Forwarded-For", tc.xff)
			}
			if got := forwarded.ClientIP(r, trusted).String(); got != tc.want {
				t.Errorf("ClientIP = %s, want %s", got, tc.want)
			}
		})
	}
}
