package dnscheck

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/resolver"
)

// Options configures NewResolvers.
type Options struct {
	// DNS is the dns section: nameservers (or resolv_conf_path) of the local
	// resolver, and the timeout of one lookup.
	DNS config.DNS
	// UseLocalNS is postal.use_local_ns_for_domain_verification: check
	// domains through the local resolver instead of their own nameservers.
	UseLocalNS bool
	// NameserverPort is the port the authoritative nameservers of a domain
	// are asked on; "53" when empty.
	NameserverPort string
}

// Resolvers hands out the resolver that checks a given domain. It is safe
// for concurrent use.
type Resolvers struct {
	local   *resolver.Resolver
	opts    Options
	timeout time.Duration
}

// NewResolvers builds the local resolver from o.DNS. It fails when no
// nameserver is configured or resolv.conf cannot be read.
func NewResolvers(o Options) (*Resolvers, error) {
	timeout := o.DNS.Timeout.Duration()
	local, err := resolver.New(resolver.Options{Nameservers: o.DNS.NameserverAddrs(), ResolvConfPath: o.DNS.ResolvConfPath,
		Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("dns check resolver: %w", err)
	}
	if o.NameserverPort == "" {
		o.NameserverPort = "53"
	}
	if timeout <= 0 {
		timeout = resolver.DefaultTimeout
	}
	return &Resolvers{local: local, opts: o, timeout: timeout}, nil
}

// Local returns the local resolver.
func (rs *Resolvers) Local() Lookup { return rs.local }

// For returns the resolver that checks domain: the local one when
// UseLocalNS is set, otherwise one that asks the domain's authoritative
// nameservers (the NS records of the domain or of its closest parent that
// has some, looked up through the local resolver). When none can be found
// the local resolver is returned. It fails only when ctx ends.
func (rs *Resolvers) For(ctx context.Context, domain string) (Lookup, error) {
	if rs.opts.UseLocalNS {
		return rs.local, nil
	}
	hosts := rs.effectiveNS(ctx, domain)
	var servers []string
	for _, h := range hosts {
		ips, err := rs.local.IPs(ctx, h)
		if err != nil {
			continue
		}
		for _, ip := range ips {
			servers = append(servers, net.JoinHostPort(ip.String(), rs.opts.NameserverPort))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nameservers of %s: %w", domain, err)
	}
	if len(servers) == 0 {
		return rs.local, nil
	}
	auth, err := resolver.New(resolver.Options{Nameservers: servers, Timeout: rs.timeout})
	if err != nil {
		return rs.local, nil
	}
	return auth, nil
}

// effectiveNS returns the NS host names of domain or of its closest parent
// (at least two labels long) that has NS records.
func (rs *Resolvers) effectiveNS(ctx context.Context, domain string) []string {
	labels := dns.SplitDomainName(domain)
	for i := 0; i+1 < len(labels); i++ {
		name := strings.Join(labels[i:], ".")
		if hosts := rs.ns(ctx, name); len(hosts) > 0 {
			return hosts
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// ns asks the local nameservers, in order, for the NS records of name.
func (rs *Resolvers) ns(ctx context.Context, name string) []string {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeNS)
	q.RecursionDesired = true
	c := &dns.Client{Timeout: rs.timeout}
	for _, server := range rs.local.Nameservers() {
		qctx, cancel := context.WithTimeout(ctx, rs.timeout)
		resp, _, err := c.ExchangeContext(qctx, q, server)
		cancel()
		if err != nil || (resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError) {
			continue
		}
		var hosts []string
		for _, rr := range resp.Answer {
			if ns, ok := rr.(*dns.NS); ok && dns.CanonicalName(ns.Hdr.Name) == dns.CanonicalName(name) {
				hosts = append(hosts, strings.TrimSuffix(ns.Ns, "."))
			}
		}
		return hosts
	}
	return nil
}
