// Package dnstest runs a real, in-process authoritative DNS server for tests
// of code that resolves names: it listens on UDP and TCP on the same
// 127.0.0.1 port, answers from a zone the test controls and can change at run
// time, truncates UDP answers that exceed the client's buffer (so TCP fallback
// is exercised), and can answer SERVFAIL or stay silent for chosen names.
//
// Behaviour: a name with no records is NXDOMAIN; a name with records but none
// of the asked type is an empty NOERROR answer; a CNAME is followed within the
// zone. Names are compared case-insensitively. The server stops when the test
// ends (t.Cleanup). It is meant for _test.go files only.
package dnstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// TTL is the time to live of records built by the helpers in this package.
const TTL = 300

// maxCNAMEChain bounds CNAME chasing so a loop in a test zone still answers.
const maxCNAMEChain = 8

// Query is one question the server received.
type Query struct {
	Name    string // fully qualified, lower case
	Type    uint16 // dns.TypeMX, ...
	Network string // "udp" or "tcp"
}

// behaviour is how the server treats one name.
type behaviour int

const (
	answer   behaviour = iota // answer from the zone
	servFail                  // answer SERVFAIL
	silent                    // never answer
)

// Server is a running test DNS server. Its methods are safe for concurrent use.
type Server struct {
	addr string

	mu      sync.Mutex
	zone    map[string][]dns.RR
	mode    map[string]behaviour
	queries []Query
}

// NewServer starts a server answering with rrs and registers its shutdown
// with t.Cleanup. It fails the test if it cannot listen.
func NewServer(t testing.TB, rrs ...dns.RR) *Server {
	t.Helper()
	s := &Server{zone: map[string][]dns.RR{}, mode: map[string]behaviour{}}
	s.Add(rrs...)

	pc, ln, err := listenPair()
	if err != nil {
		t.Fatalf("dnstest: listen: %v", err)
	}
	s.addr = pc.LocalAddr().String()

	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: ln, Handler: s}
	var wg sync.WaitGroup
	for _, srv := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				t.Errorf("dnstest: serve: %v", err)
				// Unblock the wait below if serving failed before starting.
				select {
				case <-started:
				default:
					close(started)
				}
			}
		}()
		<-started
	}
	t.Cleanup(func() {
		for _, srv := range []*dns.Server{udp, tcp} {
			if err := srv.ShutdownContext(context.Background()); err != nil {
				t.Errorf("dnstest: shutdown: %v", err)
			}
		}
		wg.Wait()
	})
	return s
}

// listenPair opens UDP and TCP listeners on the same free 127.0.0.1 port.
func listenPair() (net.PacketConn, net.Listener, error) {
	var last error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("udp: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		last = err
		pc.Close()
	}
	return nil, nil, fmt.Errorf("no port free for both udp and tcp: %w", last)
}

// Addr returns the "127.0.0.1:port" address, the same for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Add appends records to the zone, each under its own owner name.
func (s *Server) Add(rrs ...dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range rrs {
		name := dns.CanonicalName(rr.Header().Name)
		s.zone[name] = append(s.zone[name], dns.Copy(rr))
	}
}

// Set replaces every record of name with rrs (whose owner names are rewritten
// to name), and makes name answer normally again. Set with no records removes
// name, which then answers NXDOMAIN.
func (s *Server) Set(name string, rrs ...dns.RR) {
	name = dns.CanonicalName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mode, name)
	if len(rrs) == 0 {
		delete(s.zone, name)
		return
	}
	out := make([]dns.RR, 0, len(rrs))
	for _, rr := range rrs {
		rr = dns.Copy(rr)
		rr.Header().Name = name
		out = append(out, rr)
	}
	s.zone[name] = out
}

// ServFail makes every question about name answer SERVFAIL until Set is
// called for it.
func (s *Server) ServFail(name string) { s.setMode(name, servFail) }

// Silence makes the server drop every question about name without answering,
// as an unreachable nameserver would, until Set is called for it.
func (s *Server) Silence(name string) { s.setMode(name, silent) }

func (s *Server) setMode(name string, b behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode[dns.CanonicalName(name)] = b
}

// Queries returns the questions received so far, oldest first.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Query(nil), s.queries...)
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	if len(req.Question) != 1 {
		resp.SetRcodeFormatError(req)
		_ = w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	network := w.LocalAddr().Network()

	s.mu.Lock()
	s.queries = append(s.queries, Query{Name: name, Type: q.Qtype, Network: network})
	mode := s.mode[name]
	var answers []dns.RR
	found := false
	if mode == answer {
		answers, found = s.resolveLocked(name, q.Qtype)
	}
	s.mu.Unlock()

	switch mode {
	case silent:
		return
	case servFail:
		resp.SetRcode(req, dns.RcodeServerFailure)
	default:
		resp.SetReply(req)
		resp.Authoritative = true
		resp.RecursionAvailable = true
		resp.Answer = answers
		if !found {
			resp.Rcode = dns.RcodeNameError
		}
	}
	if network == "udp" {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
			resp.SetEdns0(opt.UDPSize(), false)
		}
		resp.Truncate(size)
	}
	_ = w.WriteMsg(resp)
}

// resolveLocked returns the answer records for name and qtype, following
// CNAMEs within the zone, and whether name exists at all.
func (s *Server) resolveLocked(name string, qtype uint16) ([]dns.RR, bool) {
	var out []dns.RR
	for i := 0; i < maxCNAMEChain; i++ {
		rrs, ok := s.zone[name]
		if !ok {
			return out, i > 0
		}
		var target string
		for _, rr := range rrs {
			if rr.Header().Rrtype == qtype || qtype == dns.TypeANY {
				out = append(out, dns.Copy(rr))
			} else if c, isCNAME := rr.(*dns.CNAME); isCNAME {
				out = append(out, dns.Copy(rr))
				target = dns.CanonicalName(c.Target)
			}
		}
		if target == "" || qtype == dns.TypeCNAME {
			return out, true
		}
		name = target
	}
	return out, true
}

func header(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: rrtype, Class: dns.ClassINET, Ttl: TTL}
}

// MX returns an MX record: name's mail goes to host at preference pref.
// Use host "." for an RFC 7505 null MX.
func MX(name string, pref uint16, host string) dns.RR {
	return &dns.MX{Hdr: header(name, dns.TypeMX), Preference: pref, Mx: dns.Fqdn(host)}
}

// A returns an A record. It panics when ip is not an IPv4 literal, like
// regexp.MustCompile on a bad pattern: test zones are written by hand.
func A(name, ip string) dns.RR {
	v4 := net.ParseIP(ip).To4()
	if v4 == nil {
		panic(fmt.Sprintf("dnstest.A(%q): %q is not an IPv4 address", name, ip))
	}
	return &dns.A{Hdr: header(name, dns.TypeA), A: v4}
}

// AAAA returns an AAAA record. It panics when ip is not an IPv6 literal.
func AAAA(name, ip string) dns.RR {
	v6 := net.ParseIP(ip)
	if v6 == nil || v6.To4() != nil {
		panic(fmt.Sprintf("dnstest.AAAA(%q): %q is not an IPv6 address", name, ip))
	}
	return &dns.AAAA{Hdr: header(name, dns.TypeAAAA), AAAA: v6}
}

// TXT returns one TXT record holding the given texts; a text longer than 255
// bytes is split into several character-strings, as DNS requires, so a
// resolver that joins a record's strings gets the texts back concatenated.
func TXT(name string, texts ...string) dns.RR {
	var parts []string
	for _, t := range texts {
		for len(t) > 255 {
			parts = append(parts, t[:255])
			t = t[255:]
		}
		parts = append(parts, t)
	}
	return &dns.TXT{Hdr: header(name, dns.TypeTXT), Txt: parts}
}

// CNAME returns a CNAME record from name to target.
func CNAME(name, target string) dns.RR {
	return &dns.CNAME{Hdr: header(name, dns.TypeCNAME), Target: dns.Fqdn(target)}
}

// RR parses one zone-file line such as "example.com. 300 IN MX 10 mx.example.com.".
// It panics on a malformed line.
func RR(line string) dns.RR {
	rr, err := dns.NewRR(line)
	if err != nil || rr == nil {
		panic(fmt.Sprintf("dnstest.RR(%q): %v", strings.TrimSpace(line), err))
	}
	return rr
}
