package resolver_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/postalgo/postal/daemon/resolver"
	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

func newResolver(t *testing.T, timeout time.Duration, servers ...string) *resolver.Resolver {
	t.Helper()
	r, err := resolver.New(resolver.Options{Nameservers: servers, Timeout: timeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func isTemp(err error) bool {
	var te *resolver.TempError
	return errors.As(err, &te) && te.Temporary()
}

func TestMX(t *testing.T) {
	srv := dnstest.NewServer(t,
		dnstest.MX("example.com", 20, "b.mx.example.com"),
		dnstest.MX("example.com", 10, "z.mx.example.com"),
		dnstest.MX("example.com", 20, "A.mx.example.com"),
		dnstest.MX("example.com", 5, "first.example.com"),
		dnstest.MX("null.example", 0, "."),
		dnstest.A("nomx.example", "192.0.2.1"),
		dnstest.MX("mixed.example", 0, "."),
		dnstest.MX("mixed.example", 10, "mx.mixed.example"),
	)
	srv.ServFail("broken.example")
	r := newResolver(t, 2*time.Second, srv.Addr())

	tests := []struct {
		name    string
		domain  string
		want    []resolver.MX
		wantErr error
		temp    bool
	}{
		{"sorted by preference then host", "example.com", []resolver.MX{
			{"first.example.com", 5}, {"z.mx.example.com", 10}, {"a.mx.example.com", 20}, {"b.mx.example.com", 20},
		}, nil, false},
		{"trailing dot accepted", "example.com.", []resolver.MX{
			{"first.example.com", 5}, {"z.mx.example.com", 10}, {"a.mx.example.com", 20}, {"b.mx.example.com", 20},
		}, nil, false},
		{"null MX", "null.example", nil, resolver.ErrNullMX, false},
		{"dot mixed with real hosts is dropped", "mixed.example", []resolver.MX{{"mx.mixed.example", 10}}, nil, false},
		{"NXDOMAIN", "missing.example", nil, resolver.ErrNotFound, false},
		{"name without MX is empty", "nomx.example", []resolver.MX{}, nil, false},
		{"SERVFAIL is temporary", "broken.example", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.MX(t.Context(), tt.domain)
			switch {
			case tt.temp:
				if !isTemp(err) {
					t.Fatalf("MX(%s) error = %v, want *TempError", tt.domain, err)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("MX(%s) error = %v, want %v", tt.domain, err, tt.wantErr)
				}
				if isTemp(err) {
					t.Fatalf("MX(%s) error %v must not be temporary", tt.domain, err)
				}
				return
			case err != nil:
				t.Fatalf("MX(%s): %v", tt.domain, err)
			}
			if got == nil || !slices.Equal(got, tt.want) {
				t.Errorf("MX(%s) = %#v, want %#v", tt.domain, got, tt.want)
			}
		})
	}
}

func TestIPs(t *testing.T) {
	srv := dnstest.NewServer(t,
		dnstest.AAAA("dual.example", "2001:db8::1"),
		dnstest.A("dual.example", "192.0.2.1"),
		dnstest.A("dual.example", "192.0.2.2"),
		dnstest.AAAA("v6.example", "2001:db8::2"),
		dnstest.CNAME("alias.example", "dual.example"),
		dnstest.MX("mxonly.example", 10, "mx.example"),
		dnstest.A("halfbroken.example", "192.0.2.9"),
	)
	srv.ServFail("broken.example")
	r := newResolver(t, 2*time.Second, srv.Addr())

	tests := []struct {
		name    string
		host    string
		want    []string
		wantErr error
		temp    bool
	}{
		{"IPv4 first then IPv6", "dual.example", []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}, nil, false},
		{"IPv6 only", "v6.example", []string{"2001:db8::2"}, nil, false},
		{"CNAME followed", "alias.example", []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}, nil, false},
		{"literal returned as is", "198.51.100.7", []string{"198.51.100.7"}, nil, false},
		{"no address records", "mxonly.example", nil, resolver.ErrNotFound, false},
		{"NXDOMAIN", "missing.example", nil, resolver.ErrNotFound, false},
		{"SERVFAIL is temporary", "broken.example", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.IPs(t.Context(), tt.host)
			switch {
			case tt.temp:
				if !isTemp(err) {
					t.Fatalf("IPs(%s) error = %v, want *TempError", tt.host, err)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("IPs(%s) error = %v, want %v", tt.host, err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("IPs(%s): %v", tt.host, err)
			}
			var strs []string
			for _, ip := range got {
				strs = append(strs, ip.String())
			}
			if !slices.Equal(strs, tt.want) {
				t.Errorf("IPs(%s) = %v, want %v", tt.host, strs, tt.want)
			}
		})
	}
}

func TestTXTAndCNAME(t *testing.T) {
	long := strings.Repeat("k", 600)
	srv := dnstest.NewServer(t,
		dnstest.TXT("example.com", "v=spf1 a mx ", "include:spf.example.net ~all"),
		dnstest.TXT("example.com", "postal-verification abc"),
		dnstest.TXT("sel._domainkey.example.com", "v=DKIM1; p="+long),
		dnstest.A("bare.example", "192.0.2.1"),
		dnstest.CNAME("psrp.example.com", "RP.Postal.Example."),
	)
	r := newResolver(t, 2*time.Second, srv.Addr())
	ctx := t.Context()

	got, err := r.TXT(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"postal-verification abc", "v=spf1 a mx include:spf.example.net ~all"}; !slices.Equal(got, want) {
		t.Errorf("TXT(example.com) = %q, want %q (strings of a record joined)", got, want)
	}
	got, err = r.TXT(ctx, "sel._domainkey.example.com")
	if err != nil || len(got) != 1 || got[0] != "v=DKIM1; p="+long {
		t.Errorf("TXT of a record over 255 bytes = %q, %v; want it whole", got, err)
	}
	if got, err := r.TXT(ctx, "bare.example"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("TXT(name without TXT) = %#v, %v; want empty, nil", got, err)
	}
	if _, err := r.TXT(ctx, "missing.example"); !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("TXT(NXDOMAIN) error = %v, want ErrNotFound", err)
	}

	if got, err := r.CNAME(ctx, "psrp.example.com"); err != nil || got != "rp.postal.example" {
		t.Errorf("CNAME = %q, %v; want rp.postal.example", got, err)
	}
	for _, name := range []string{"bare.example", "missing.example"} {
		if _, err := r.CNAME(ctx, name); !errors.Is(err, resolver.ErrNotFound) {
			t.Errorf("CNAME(%s) error = %v, want ErrNotFound", name, err)
		}
	}
}

func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	// Eight 255-byte strings in each of two records exceed the 1232-byte
	// EDNS0 buffer, so the UDP answer comes back truncated.
	big := strings.Repeat("x", 255*8)
	srv := dnstest.NewServer(t,
		dnstest.TXT("big.example", "a"+big),
		dnstest.TXT("big.example", "b"+big),
	)
	r := newResolver(t, 2*time.Second, srv.Addr())
	got, err := r.TXT(t.Context(), "big.example")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if len(got) != 2 || got[0] != "a"+big || got[1] != "b"+big {
		t.Fatalf("TXT(big.example) returned %d records with lengths %v", len(got), lens(got))
	}
	var nets []string
	for _, q := range srv.Queries() {
		nets = append(nets, q.Network)
	}
	if !slices.Equal(nets, []string{"udp", "tcp"}) {
		t.Errorf("queries went over %v, want [udp tcp]", nets)
	}
}

func lens(ss []string) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s))
	}
	return out
}

func TestSilentServerTimesOutWithinTimeout(t *testing.T) {
	srv := dnstest.NewServer(t)
	srv.Silence("slow.example")
	const timeout = 300 * time.Millisecond
	r := newResolver(t, timeout, srv.Addr())

	start := time.Now()
	_, err := r.MX(t.Context(), "slow.example")
	elapsed := time.Since(start)
	if !isTemp(err) {
		t.Fatalf("MX against a silent server: error = %v, want *TempError", err)
	}
	if elapsed < timeout/2 || elapsed > timeout+500*time.Millisecond {
		t.Errorf("lookup took %s, want about the %s timeout", elapsed, timeout)
	}
}

func TestContextCancellationStopsLookup(t *testing.T) {
	srv := dnstest.NewServer(t)
	srv.Silence("slow.example")
	r := newResolver(t, time.Minute, srv.Addr())

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := r.TXT(ctx, "slow.example")
		done <- err
	}()
	// Cancel once the query has reached the server.
	deadline := time.Now().Add(5 * time.Second)
	for len(srv.Queries()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("query never reached the server")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !isTemp(err) {
			t.Errorf("error = %v, want a *TempError wrapping context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lookup did not return after its context was cancelled")
	}
}

func TestNameserversTriedInTurn(t *testing.T) {
	good := dnstest.NewServer(t, dnstest.A("host.example", "192.0.2.5"))
	failing := dnstest.NewServer(t)
	failing.ServFail("host.example")
	// A UDP socket that never answers stands in for a dead nameserver.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })

	tests := []struct {
		name    string
		servers []string
	}{
		{"after SERVFAIL", []string{failing.Addr(), good.Addr()}},
		{"after a dead server, within the timeout", []string{dead.LocalAddr().String(), good.Addr()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver(t, time.Second, tt.servers...)
			ips, err := r.IPs(t.Context(), "host.example")
			if err != nil || len(ips) != 1 || !ips[0].Equal(net.ParseIP("192.0.2.5")) {
				t.Errorf("IPs = %v, %v; want [192.0.2.5]", ips, err)
			}
		})
	}
}

func TestZoneChangesAtRunTime(t *testing.T) {
	srv := dnstest.NewServer(t, dnstest.MX("example.com", 10, "old.example.com"))
	r := newResolver(t, time.Second, srv.Addr())
	srv.Set("example.com", dnstest.RR("example.com. 60 IN MX 5 new.example.com."))
	got, err := r.MX(t.Context(), "example.com")
	if err != nil || !slices.Equal(got, []resolver.MX{{"new.example.com", 5}}) {
		t.Errorf("MX after Set = %v, %v; want [new.example.com 5]", got, err)
	}
	srv.Set("example.com")
	if _, err := r.MX(t.Context(), "example.com"); !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("MX after removing the name: error = %v, want ErrNotFound", err)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("search example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.conf")
	if err := os.WriteFile(empty, []byte("search example.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    resolver.Options
		want    []string
		wantErr string
	}{
		{"explicit servers get port 53", resolver.Options{Nameservers: []string{"192.0.2.1", "192.0.2.2:5353", "2001:db8::1", "[2001:db8::2]:54"}},
			[]string{"192.0.2.1:53", "192.0.2.2:5353", "[2001:db8::1]:53", "[2001:db8::2]:54"}, ""},
		{"resolv.conf read when none given", resolver.Options{ResolvConfPath: conf},
			[]string{"192.0.2.53:53", "[2001:db8::53]:53"}, ""},
		{"resolv.conf without nameserver", resolver.Options{ResolvConfPath: empty}, nil, "resolver: no nameserver in " + empty},
		{"missing resolv.conf", resolver.Options{ResolvConfPath: filepath.Join(dir, "nope")}, nil, "resolver: read " + filepath.Join(dir, "nope")},
		{"negative timeout", resolver.Options{Nameservers: []string{"192.0.2.1"}, Timeout: -time.Second}, nil, "resolver: negative timeout -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := resolver.New(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("New error = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Nameservers(); !slices.Equal(got, tt.want) {
				t.Errorf("Nameservers() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInvalidNameIsNotTemporary(t *testing.T) {
	srv := dnstest.NewServer(t)
	r := newResolver(t, time.Second, srv.Addr())
	_, err := r.MX(t.Context(), "bad..name")
	if err == nil || isTemp(err) || errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("MX(bad..name) error = %v, want a plain invalid-name error", err)
	}
	if n := len(srv.Queries()); n != 0 {
		t.Errorf("an invalid name sent %d queries, want 0", n)
	}
}

func TestDNSTestServerHonoursTypes(t *testing.T) {
	srv := dnstest.NewServer(t, dnstest.A("host.example", "192.0.2.1"))
	c := new(dns.Client)
	q := new(dns.Msg).SetQuestion("HOST.example.", dns.TypeA)
	resp, _, err := c.Exchange(q, srv.Addr())
	if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 || !resp.Authoritative {
		t.Fatalf("A query: %v, %v", resp, err)
	}
}
