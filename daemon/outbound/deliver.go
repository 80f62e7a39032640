package outbound

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postalgo/postal/daemon/resolver"
	"github.com/postalgo/postal/daemon/smtpclient"
	"github.com/postalgo/postal/daemon/store"
)

// endpoint is one SMTP server to try: a relay, or one address of an MX host.
type endpoint struct {
	host  string // MX or relay host name
	ip    net.IP // nil for a relay (dialled by name)
	port  int
	mode  smtpclient.SSLMode
	relay bool
}

func (e endpoint) String() string {
	hp := net.JoinHostPort(e.host, strconv.Itoa(e.port))
	if e.ip != nil {
		return hp + " (" + e.ip.String() + ")"
	}
	return hp
}

type mxAnswer struct {
	mx  []resolver.MX
	err error // ErrNullMX or ErrNotFound; temporary errors are not cached
}

type ipAnswer struct {
	ips []net.IP
	err error
}

// route is the outcome of resolving a destination domain: endpoints to try,
// or a failure that applies to every message bound there.
type route struct {
	endpoints []endpoint
	hosts     []string // host names tried, for details
	permanent bool     // the failure is final (null MX, NXDOMAIN, no address at all)
	status    string   // enhanced status of a permanent failure
	details   string   // set when there is no endpoint
	output    string
}

// resolve finds where mail for domain goes.
func (p *Processor) resolve(ctx context.Context, domain string, now time.Time) route {
	if len(p.relays) > 0 {
		r := route{endpoints: p.relays}
		for _, e := range p.relays {
			r.hosts = append(r.hosts, e.host)
		}
		return r
	}
	mxs, err := p.lookupMX(ctx, domain, now)
	switch {
	case errors.Is(err, resolver.ErrNullMX):
		return route{permanent: true, status: "5.1.10", details: fmt.Sprintf("Domain %s does not accept mail (null MX)", domain)}
	case errors.Is(err, resolver.ErrNotFound):
		return route{permanent: true, status: "5.1.2", details: fmt.Sprintf("Domain %s does not exist", domain)}
	case err != nil:
		return route{details: fmt.Sprintf("DNS lookup of the mail servers of %s failed temporarily", domain), output: err.Error()}
	}
	port := p.o.SMTPClient.DestinationPort
	if port == 0 {
		port = 25
	}
	hosts := make([]string, 0, len(mxs))
	for _, m := range mxs {
		hosts = append(hosts, m.Host)
	}
	implicit := len(hosts) == 0
	if implicit {
		hosts = []string{domain}
	}
	r := route{hosts: hosts}
	var errs []string
	notFound := 0
	for _, h := range hosts {
		ips, err := p.lookupIPs(ctx, h, now)
		if err != nil {
			if errors.Is(err, resolver.ErrNotFound) {
				notFound++
			}
			errs = append(errs, h+": "+err.Error())
			continue
		}
		for _, ip := range ips {
			r.endpoints = append(r.endpoints, endpoint{host: h, ip: ip, port: port, mode: smtpclient.SSLAuto})
		}
	}
	if len(r.endpoints) == 0 {
		r.output = strings.Join(errs, ", ")
		if implicit && notFound == 1 {
			r.permanent, r.status = true, "5.1.2"
			r.details = fmt.Sprintf("Domain %s has no MX, A or AAAA records", domain)
		} else {
			r.details = fmt.Sprintf("No SMTP servers were available for %s. No addresses found for %s.", domain, strings.Join(hosts, ", "))
		}
	}
	return r
}

func (p *Processor) lookupMX(ctx context.Context, domain string, now time.Time) ([]resolver.MX, error) {
	if a, ok := p.mx.get(domain, now); ok {
		p.m.mxCache.WithLabelValues("hit").Inc()
		return a.mx, a.err
	}
	p.m.mxCache.WithLabelValues("miss").Inc()
	mxs, err := p.res.MX(ctx, domain)
	if err == nil || errors.Is(err, resolver.ErrNullMX) || errors.Is(err, resolver.ErrNotFound) {
		p.mx.put(domain, mxAnswer{mx: mxs, err: err}, now)
	}
	return mxs, err
}

func (p *Processor) lookupIPs(ctx context.Context, host string, now time.Time) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	if a, ok := p.ips.get(host, now); ok {
		return a.ips, a.err
	}
	ips, err := p.res.IPs(ctx, host)
	if err == nil || errors.Is(err, resolver.ErrNotFound) {
		p.ips.put(host, ipAnswer{ips: ips, err: err}, now)
	}
	return ips, err
}

// deadSet remembers, for one batch, the destinations that could not be
// reached, so later messages go straight to the next one.
type deadSet struct {
	mu   sync.Mutex
	keys map[string]string // Destination.Key -> error text
}

func (d *deadSet) has(k string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.keys[k]
	return ok
}

func (d *deadSet) add(k, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keys[k] = why
}

// deliver prepares and sends the jobs, Concurrency at a time, and fills in
// their outcomes.
func (p *Processor) deliver(ctx context.Context, jobs []*job, now time.Time) {
	if len(jobs) == 0 {
		return
	}
	routes := map[string]route{}
	for _, j := range jobs {
		d := destDomain(j)
		if _, ok := routes[d]; !ok {
			routes[d] = p.resolve(ctx, d, now)
		}
	}
	bodies := p.newBodies(ctx, jobs)
	dead := &deadSet{keys: map[string]string{}}
	journal := p.startJournal(ctx, len(jobs))
	defer journal.close()
	sem := make(chan struct{}, p.conc)
	var wg sync.WaitGroup
	for _, j := range jobs {
		r := routes[destDomain(j)]
		if len(r.endpoints) == 0 {
			d := store.NewDelivery{Details: r.details, Output: r.output}
			if r.permanent {
				p.hardFail(j, d, &failure{status: r.status, diag: "smtp; 550 " + r.status + " " + r.details, reason: r.details})
			} else {
				p.softFail(j, now, d, failure{})
			}
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p.send(ctx, j, r, bodies, dead, journal, now)
		})
	}
	wg.Wait()
}

// destDomain is the domain a job's mail goes to.
func destDomain(j *job) string {
	if j.q.Domain != "" {
		return strings.ToLower(j.q.Domain)
	}
	_, d, _ := strings.Cut(j.msg.RcptTo, "@")
	return strings.ToLower(d)
}

// send tries the route's endpoints in order for one message.
func (p *Processor) send(ctx context.Context, j *job, r route, bodies *bodies, dead *deadSet, journal *journalWriter, now time.Time) {
	data, from, err := bodies.get(ctx, p, j)
	if errors.Is(err, errHeaderTooLarge) {
		p.log.Error("refusing to send a message whose header is over the limit", "err", err, "message_id", j.msg.ID)
		p.hardFail(j, store.NewDelivery{Details: "The message header is over the size limit; it was not sent", Output: err.Error()}, nil)
		return
	}
	if err != nil {
		p.log.Error("preparing message failed", "err", err, "message_id", j.msg.ID)
		p.softFail(j, now, store.NewDelivery{Details: "An error occurred while preparing the message", Output: err.Error()}, failure{})
		return
	}
	j.sentAs = data
	src, err := p.sourceAddress(ctx, j, now)
	if err != nil {
		p.log.Error("choosing the source address failed", "err", err, "message_id", j.msg.ID)
		j.internalRetry(now, err)
		return
	}
	env := smtpclient.Envelope{From: from, To: []string{j.msg.RcptTo}}
	mode := smtpclient.SSLAuto
	if j.server.RequireTLS {
		mode = smtpclient.SSLStartTLS
	}
	var errs []string
	tried := 0
	for _, ep := range r.endpoints {
		d := smtpclient.Destination{Host: ep.host, Port: ep.port, SSLMode: ep.mode}
		if ep.ip != nil {
			d.Host, d.ServerName = ep.ip.String(), ep.host
		}
		if ep.relay {
			if j.server.RequireTLS && (ep.mode == smtpclient.SSLAuto || ep.mode == smtpclient.SSLNone) {
				d.SSLMode = smtpclient.SSLStartTLS
			}
		} else {
			d.SSLMode = mode
		}
		if src != nil {
			switch {
			case ep.ip == nil || ep.ip.To4() != nil:
				d.LocalAddr = net.ParseIP(src.IPv4)
			case src.IPv6 != "":
				d.LocalAddr = net.ParseIP(src.IPv6)
			default:
				continue // no IPv6 source address for an IPv6 destination
			}
		}
		key := d.Key()
		if dead.has(key) {
			errs = append(errs, ep.String()+": unreachable earlier in this batch")
			continue
		}
		tried++
		start := time.Now()
		res, err := p.client.Send(ctx, d, env, data)
		p.m.latency.Observe(time.Since(start).Seconds())
		if err == nil {
			details := fmt.Sprintf("Message for %s accepted by %s", j.msg.RcptTo, ep)
			if src != nil {
				details += fmt.Sprintf(" (from %s)", d.LocalAddr)
			}
			j.res = result{verdict: vSent, d: store.NewDelivery{Status: store.StatusSent, Details: details,
				Output: reply(res.Code, res.Enhanced, res.Message), SentWithSSL: res.TLS, Time: seconds(res.Duration)}}
			journal.add(j)
			return
		}
		var se *smtpclient.Error
		if !errors.As(err, &se) {
			se = &smtpclient.Error{Stage: smtpclient.StageData, Err: err}
		}
		if connectionStage(se.Stage) && ctx.Err() == nil {
			dead.add(key, se.Error())
			errs = append(errs, ep.String()+": "+se.Error())
			continue
		}
		out := reply(se.Code, se.Enhanced, se.Message)
		if out == "" {
			out = se.Error()
		}
		d2 := store.NewDelivery{Output: out, SentWithSSL: res != nil && res.TLS}
		if res != nil {
			d2.Time = seconds(res.Duration)
		}
		f := failure{diag: "smtp; " + out, remoteMTA: ep.host, reason: "hard fail: " + out}
		if se.Permanent {
			d2.Details = fmt.Sprintf("Permanent SMTP delivery error when sending to %s", ep)
			f.status = enhancedFor(se.Enhanced, "5.0.0")
			p.hardFail(j, d2, &f)
			return
		}
		d2.Details = fmt.Sprintf("Temporary SMTP delivery error when sending to %s", ep)
		f.diag = "smtp; " + out
		p.softFail(j, now, d2, f)
		return
	}
	details := fmt.Sprintf("No SMTP servers were available for %s.", destDomain(j))
	if tried == 0 && len(errs) == 0 {
		details += " No hosts to try."
	} else {
		details += " Tried " + strings.Join(r.hosts, ", ") + "."
	}
	p.softFail(j, now, store.NewDelivery{Details: details, Output: strings.Join(errs, ", ")}, failure{diag: "smtp; 451 4.4.1 " + details})
}

// connectionStage reports whether a failure at stage means the server could
// not be used at all (so the next one is worth trying).
func connectionStage(stage string) bool {
	switch stage {
	case smtpclient.StageDial, smtpclient.StageGreeting, smtpclient.StageEHLO, smtpclient.StageStartTLS:
		return true
	}
	return false
}

// reply formats an SMTP reply as "code enhanced text".
func reply(code int, enhanced, msg string) string {
	if code == 0 && msg == "" {
		return ""
	}
	parts := make([]string, 0, 3)
	if code != 0 {
		parts = append(parts, strconv.Itoa(code))
	}
	if enhanced != "" {
		parts = append(parts, enhanced)
	}
	if msg != "" {
		parts = append(parts, strings.ReplaceAll(msg, "\n", " "))
	}
	return strings.Join(parts, " ")
}

// enhancedFor returns e when it is a permanent (5.x.x) enhanced code, else def.
func enhancedFor(e, def string) string {
	if strings.HasPrefix(e, "5.") {
		return e
	}
	return def
}

// seconds is a duration in seconds, to the microsecond (Postal keeps two
// decimals, which reads 0 for a local delivery).
func seconds(d time.Duration) float64 {
	return math.Round(d.Seconds()*1e6) / 1e6
}

// sourceAddress picks the IP address a job is sent from when
// postal.use_ip_pools is on; nil means the system's choice.
func (p *Processor) sourceAddress(ctx context.Context, j *job, now time.Time) (*store.IPAddress, error) {
	if !p.o.Postal.UseIPPools {
		return nil, nil
	}
	rt, ok := p.pools.get(j.msg.ServerID, now)
	if !ok {
		var err error
		if rt, err = p.o.Store.IPPoolRouting(ctx, j.msg.ServerID); err != nil {
			return nil, err
		}
		p.pools.put(j.msg.ServerID, rt, now)
	}
	if j.q.IPAddressID != 0 {
		for _, list := range rt.Addresses {
			for _, a := range list {
				if a.ID == j.q.IPAddressID {
					return a, nil
				}
			}
		}
	}
	return pickAddress(rt.Addresses[poolFor(rt, j.msg, j.raw)], p.rand), nil
}

// poolFor chooses the pool of a message as Postal does: the first matching
// rule of the server, then of its organisation (newest first), else the
// server's pool, else the default pool.
func poolFor(rt *store.IPPoolRouting, m *store.Message, raw []byte) int64 {
	var from []string
	fromParsed := false
	for _, rules := range [][]*store.IPPoolRule{rt.ServerRules, rt.OrganizationRules} {
		for _, r := range rules {
			if len(r.From) > 0 && !fromParsed {
				from, fromParsed = fromAddresses(raw), true
			}
			if ruleMatches(r, from, m.RcptTo) {
				return r.PoolID
			}
		}
	}
	if rt.ServerPoolID != 0 {
		return rt.ServerPoolID
	}
	return rt.DefaultPoolID
}

func ruleMatches(r *store.IPPoolRule, from []string, rcpt string) bool {
	for _, c := range r.From {
		for _, f := range from {
			if addressMatches(c, f) {
				return true
			}
		}
	}
	for _, c := range r.To {
		if rcpt != "" && addressMatches(c, rcpt) {
			return true
		}
	}
	return false
}

// addressMatches is Postal's rule condition: "user@domain" matches the
// address with any +tag removed; anything else is a domain.
func addressMatches(cond, addr string) bool {
	cond, addr = strings.ToLower(strings.TrimSpace(cond)), strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	local, domain := addr[:at], addr[at+1:]
	if strings.Contains(cond, "@") {
		local, _, _ = strings.Cut(local, "+")
		return cond == local+"@"+domain
	}
	return cond == domain
}

// pickAddress chooses an address weighted by priority (Postal orders by
// RAND() * priority and takes the first); nil when the pool is empty.
func pickAddress(list []*store.IPAddress, rnd func() float64) *store.IPAddress {
	var best *store.IPAddress
	bestScore := -1.0
	for _, a := range list {
		if s := rnd() * float64(a.Priority); s > bestScore {
			best, bestScore = a, s
		}
	}
	return best
}

// fromAddresses returns the addresses of the message's From header fields.
func fromAddresses(raw []byte) []string {
	var out []string
	for _, v := range headerValues(raw, "from") {
		list, err := mail.ParseAddressList(v)
		if err != nil {
			continue
		}
		for _, a := range list {
			out = append(out, a.Address)
		}
	}
	return out
}
