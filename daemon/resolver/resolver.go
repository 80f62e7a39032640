// Package resolver looks up the DNS records postal needs (MX, A/AAAA, TXT,
// CNAME) by asking recursive nameservers directly with miekg/dns.
//
// Contract: every lookup is bounded by Options.Timeout and by the caller's
// context, whichever ends first; nameservers are tried in order, each getting
// an equal share of the time that remains; a truncated UDP answer is retried
// over TCP on the same nameserver. Failures are classified so callers can
// decide between a hard and a soft failure:
//
//   - ErrNotFound: the name does not exist (NXDOMAIN), or, where the method
//     says so, it exists but holds no record of the asked type;
//   - ErrNullMX: the domain publishes an RFC 7505 null MX and accepts no mail;
//   - *TempError: SERVFAIL, REFUSED, a timeout or a network error from every
//     nameserver; Temporary reports true and a later retry may succeed.
//
// A Resolver holds no mutable state after New and is safe for concurrent use.
package resolver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds one lookup when Options.Timeout is zero; it matches
// Postal's dns.timeout default of 5 seconds.
const DefaultTimeout = 5 * time.Second

// DefaultResolvConfPath is read for nameservers when Options.Nameservers is empty.
const DefaultResolvConfPath = "/etc/resolv.conf"

// ednsUDPSize is the EDNS0 buffer size advertised on UDP queries: the size
// recommended by DNS Flag Day 2020 to avoid IP fragmentation.
const ednsUDPSize = 1232

// ErrNotFound reports that a name does not exist, or holds no record of a type
// whose absence the method documents as "not found".
var ErrNotFound = errors.New("dns: not found")

// ErrNullMX reports that a domain publishes an RFC 7505 null MX ("0 .") and so
// accepts no mail at all. Mail to it must fail permanently without a retry.
var ErrNullMX = errors.New("dns: domain accepts no mail (null MX)")

// TempError is a lookup failure that may go away on retry: every nameserver
// answered SERVFAIL (or another error code), timed out, or could not be
// reached. Err holds the last underlying cause.
type TempError struct {
	Name string // the name that was looked up, fully qualified
	Type string // the record type, e.g. "MX"
	Err  error  // the last cause seen
}

// Error describes the lookup and its last cause on one line.
func (e *TempError) Error() string {
	return fmt.Sprintf("dns: temporary failure looking up %s %s: %v", e.Type, e.Name, e.Err)
}

// Unwrap returns the last cause, so errors.Is(err, context.DeadlineExceeded)
// works for timeouts.
func (e *TempError) Unwrap() error { return e.Err }

// Temporary always reports true: a TempError is worth retrying later.
func (e *TempError) Temporary() bool { return true }

// MX is one mail exchanger of a domain.
type MX struct {
	Host       string // lower case, without the trailing dot
	Preference uint16 // lower is preferred
}

// Options configures New.
type Options struct {
	// Nameservers are "host" or "host:port" (port 53 when absent). When empty,
	// the nameservers listed in ResolvConfPath are used.
	Nameservers []string
	// ResolvConfPath is read when Nameservers is empty; DefaultResolvConfPath
	// when empty.
	ResolvConfPath string
	// Timeout bounds one lookup, all nameservers and TCP retries included;
	// DefaultTimeout when zero.
	Timeout time.Duration
}

// Resolver performs lookups against a fixed list of nameservers. It is safe
// for concurrent use.
type Resolver struct {
	servers []string
	timeout time.Duration
	udp     *dns.Client
	tcp     *dns.Client
}

// New returns a Resolver for o. It fails when resolv.conf cannot be read, when
// no nameserver is configured, or when Timeout is negative.
func New(o Options) (*Resolver, error) {
	if o.Timeout < 0 {
		return nil, fmt.Errorf("resolver: negative timeout %s", o.Timeout)
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	var servers []string
	if len(o.Nameservers) > 0 {
		for _, ns := range o.Nameservers {
			addr, err := normalizeServer(ns)
			if err != nil {
				return nil, err
			}
			servers = append(servers, addr)
		}
	} else {
		path := o.ResolvConfPath
		if path == "" {
			path = DefaultResolvConfPath
		}
		conf, err := dns.ClientConfigFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("resolver: read %s: %w", path, err)
		}
		for _, s := range conf.Servers {
			servers = append(servers, net.JoinHostPort(s, conf.Port))
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("resolver: no nameserver in %s", path)
		}
	}
	return &Resolver{
		servers: servers,
		timeout: timeout,
		udp:     &dns.Client{Net: "udp", Timeout: timeout},
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout},
	}, nil
}

// normalizeServer turns "host", "host:port", "v6addr" or "[v6addr]:port" into
// a dialable host:port.
func normalizeServer(ns string) (string, error) {
	ns = strings.TrimSpace(ns)
	if ns == "" {
		return "", errors.New("resolver: empty nameserver address")
	}
	if host, port, err := net.SplitHostPort(ns); err == nil {
		if host == "" || port == "" {
			return "", fmt.Errorf("resolver: invalid nameserver address %q", ns)
		}
		return ns, nil
	}
	return net.JoinHostPort(strings.Trim(ns, "[]"), "53"), nil
}

// Nameservers returns the host:port addresses the Resolver asks, in order.
func (r *Resolver) Nameservers() []string { return slices.Clone(r.servers) }

// MX returns the mail exchangers of domain sorted by preference, ties ordered
// by host name. It returns ErrNullMX for an RFC 7505 null MX, ErrNotFound for
// NXDOMAIN, and an empty slice with a nil error when the name exists but has no
// MX records (the caller then falls back to the domain's A/AAAA records).
// Any "." target mixed with real exchangers is dropped, as are duplicates.
func (r *Resolver) MX(ctx context.Context, domain string) ([]MX, error) {
	resp, err := r.lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var recs []*dns.MX
	for _, rr := range resp.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			recs = append(recs, mx)
		}
	}
	if len(recs) == 1 && recs[0].Mx == "." {
		return nil, fmt.Errorf("resolve MX %s: %w", domain, ErrNullMX)
	}
	out := make([]MX, 0, len(recs))
	for _, mx := range recs {
		if mx.Mx == "." {
			continue
		}
		out = append(out, MX{Host: hostName(mx.Mx), Preference: mx.Preference})
	}
	slices.SortFunc(out, func(a, b MX) int {
		return cmp.Or(cmp.Compare(a.Preference, b.Preference), strings.Compare(a.Host, b.Host))
	})
	return slices.CompactFunc(out, func(a, b MX) bool { return a == b }), nil
}

// IPs returns the IPv4 addresses of host followed by its IPv6 addresses. Both
// lookups run concurrently; an IP literal is returned as is without a query.
// It returns ErrNotFound when neither an A nor an
// AAAA record exists. When one family fails temporarily but the other yields
// addresses, those addresses are returned with a nil error; when nothing was
// found and a lookup failed temporarily, the *TempError is returned.
func (r *Resolver) IPs(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	type result struct {
		ips []net.IP
		err error
	}
	aaaa := make(chan result, 1)
	go func() {
		ips, err := r.addrs(ctx, host, dns.TypeAAAA)
		aaaa <- result{ips, err}
	}()
	v4, err4 := r.addrs(ctx, host, dns.TypeA)
	v6 := <-aaaa
	ips := append(v4, v6.ips...)
	if len(ips) > 0 {
		return ips, nil
	}
	for _, err := range []error{err4, v6.err} {
		var te *TempError
		if errors.As(err, &te) {
			return nil, err
		}
	}
	for _, err := range []error{err4, v6.err} {
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("resolve IPs %s: %w", host, ErrNotFound)
}

func (r *Resolver) addrs(ctx context.Context, host string, qtype uint16) ([]net.IP, error) {
	resp, err := r.lookup(ctx, host, qtype)
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, rr := range resp.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if qtype == dns.TypeA {
				ips = append(ips, rr.A)
			}
		case *dns.AAAA:
			if qtype == dns.TypeAAAA {
				ips = append(ips, rr.AAAA)
			}
		}
	}
	return ips, nil
}

// TXT returns the TXT records of name, the character-strings of each record
// joined into one string (as DKIM and SPF readers expect). It returns
// ErrNotFound for NXDOMAIN and an empty slice with a nil error when the name
// exists but has no TXT record.
func (r *Resolver) TXT(ctx context.Context, name string) ([]string, error) {
	resp, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out, nil
}

// CNAME returns the target of name's CNAME record, lower case and without the
// trailing dot. It returns ErrNotFound for NXDOMAIN and when name has no
// CNAME record.
func (r *Resolver) CNAME(ctx context.Context, name string) (string, error) {
	resp, err := r.lookup(ctx, name, dns.TypeCNAME)
	if err != nil {
		return "", err
	}
	fqdn := dns.CanonicalName(name)
	for _, rr := range resp.Answer {
		if c, ok := rr.(*dns.CNAME); ok && dns.CanonicalName(c.Hdr.Name) == fqdn {
			return hostName(c.Target), nil
		}
	}
	return "", fmt.Errorf("resolve CNAME %s: %w", name, ErrNotFound)
}

func hostName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

// lookup sends one question to each nameserver in turn until one gives a
// definite answer (NOERROR or NXDOMAIN). NXDOMAIN becomes ErrNotFound; when no
// nameserver gives a definite answer the result is a *TempError.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	typ := dns.TypeToString[qtype]
	fqdn := dns.Fqdn(name)
	if _, ok := dns.IsDomainName(fqdn); !ok || name == "" {
		return nil, fmt.Errorf("resolve %s %q: invalid domain name", typ, name)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	q := new(dns.Msg)
	q.SetQuestion(fqdn, qtype)
	q.RecursionDesired = true
	q.SetEdns0(ednsUDPSize, false)

	var last error
	for i, server := range r.servers {
		if ctx.Err() != nil {
			break
		}
		deadline, _ := ctx.Deadline()
		share := time.Until(deadline) / time.Duration(len(r.servers)-i)
		actx, acancel := context.WithTimeout(ctx, share)
		resp, err := r.exchange(actx, q, server)
		acancel()
		if err != nil {
			last = fmt.Errorf("%s: %w", server, err)
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess:
			return resp, nil
		case dns.RcodeNameError:
			return nil, fmt.Errorf("resolve %s %s: %w", typ, name, ErrNotFound)
		default:
			last = fmt.Errorf("%s answered %s", server, dns.RcodeToString[resp.Rcode])
		}
	}
	if last == nil {
		// The context ended before any nameserver was asked.
		last = context.Cause(ctx)
	}
	return nil, &TempError{Name: fqdn, Type: typ, Err: last}
}

// exchange asks one nameserver over UDP, and again over TCP when the UDP
// answer is truncated. Cancelling ctx aborts a pending read at once.
func (r *Resolver) exchange(ctx context.Context, q *dns.Msg, server string) (*dns.Msg, error) {
	resp, err := r.exchangeOver(ctx, r.udp, q, server)
	if err != nil {
		return nil, err
	}
	if !resp.Truncated {
		return resp, nil
	}
	resp, err = r.exchangeOver(ctx, r.tcp, q, server)
	if err != nil {
		return nil, fmt.Errorf("tcp retry after truncated answer: %w", err)
	}
	return resp, nil
}

func (r *Resolver) exchangeOver(ctx context.Context, c *dns.Client, q *dns.Msg, server string) (*dns.Msg, error) {
	conn, err := c.DialContext(ctx, server)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", c.Net, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	resp, _, err := c.ExchangeWithConnContext(ctx, q, conn)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%s exchange: %w", c.Net, errors.Join(cerr, err))
		}
		return nil, fmt.Errorf("%s exchange: %w", c.Net, err)
	}
	return resp, nil
}
