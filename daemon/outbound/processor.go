package outbound

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/inspect"
	"github.com/postalgo/postal/daemon/mailheader"
	"github.com/postalgo/postal/daemon/resolver"
	"github.com/postalgo/postal/daemon/smtpclient"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/webhook"
)

// Store is what outgoing delivery needs of the database.
type Store interface {
	// LoadUnloaded reads the rows of a batch claimed without their data.
	LoadUnloaded(ctx context.Context, batch []*store.QueuedMessage) (map[int64]*store.Loaded, error)
	ServerByID(ctx context.Context, id int64) (*store.Server, error)
	DomainByID(ctx context.Context, id int64) (*store.Domain, error)
	CredentialByID(ctx context.Context, id int64) (*store.Credential, error)
	ActiveSuppressions(ctx context.Context, serverID int64, addresses []string, now time.Time) (map[string]*store.Suppression, error)
	OutgoingVolume(ctx context.Context, serverID int64, since time.Time) (int64, error)
	CountedAt(ctx context.Context, serverID int64, since time.Time, offset int64) (time.Time, error)
	IPPoolRouting(ctx context.Context, serverID int64) (*store.IPPoolRouting, error)
	Inspections(ctx context.Context, ids []int64) (map[int64]*store.Inspection, error)
	WebhookStore
}

// Inspector scans a message for spam and viruses (*inspect.Inspector).
type Inspector interface {
	Inspect(ctx context.Context, env inspect.Envelope, raw []byte) (inspect.Result, error)
	Spam() bool
	Virus() bool
}

// WebhookStore is what building webhook requests needs of the database:
// the server's webhooks (which are subscribed to an event).
type WebhookStore interface {
	Webhooks(ctx context.Context, serverID int64) ([]*store.Webhook, error)
}

// Resolver answers the DNS questions delivery asks (package resolver).
type Resolver interface {
	MX(ctx context.Context, domain string) ([]resolver.MX, error)
	IPs(ctx context.Context, host string) ([]net.IP, error)
}

// Sender sends one message over a pooled SMTP connection (package smtpclient).
type Sender interface {
	Send(ctx context.Context, d smtpclient.Destination, env smtpclient.Envelope, data []byte) (*smtpclient.Result, error)
}

// KeyHolder turns a parsed RSA key into the crypto.Signer that makes its
// signatures; *libcrypto.Library is one. The signatures must be the PKCS #1
// v1.5 signatures crypto/rsa would make.
type KeyHolder interface {
	NewSigner(*rsa.PrivateKey) (crypto.Signer, error)
}

// Tracker rewrites an outgoing message before it is signed (open and click
// tracking). It returns the bytes to send, or an error that soft-fails the
// message.
type Tracker interface {
	Track(ctx context.Context, msg *store.Message, raw []byte) ([]byte, error)
}

// Options configure a Processor.
type Options struct {
	Postal     config.Postal
	DNS        config.DNS
	SMTPClient config.SMTPClient
	// Store is required.
	Store Store
	// Resolver answers MX and address lookups; nil builds one from DNS.
	Resolver Resolver
	// Client sends; nil builds an smtpclient.Client from SMTPClientOptions,
	// which Close closes.
	Client Sender
	// Tracker, when set, rewrites messages before signing.
	Tracker Tracker
	// Journal, when set, is the outgoing sent-journal: a message accepted
	// by its receiver is recorded there at once, and a row whose message an
	// earlier claim already sent is recorded Sent without sending it again.
	Journal Journal
	// Keys, when set, holds each domain's DKIM key for signing (postald
	// passes libcrypto, four times faster than crypto/rsa); nil signs with
	// crypto/rsa.
	Keys KeyHolder
	Log  *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand returns a number in [0, 1) for the weighted choice of a pool's
	// address; default math/rand/v2.
	Rand func() float64
	// Concurrency is how many messages of one batch are prepared and sent at
	// once (over as many pooled connections); default 2 x GOMAXPROCS, at
	// least 4, and never above smtp_client.max_connections_per_host.
	Concurrency int
	// CacheTTL bounds the age of cached server, domain, credential, webhook
	// and IP pool rows; default 5 s.
	CacheTTL time.Duration
	// MXCacheTTL is how long MX and address answers are kept; default 60 s.
	MXCacheTTL time.Duration
	// MaxHeaderBytes and MaxHeaderLines are the SMTP server's header limits
	// (smtp_server.max_header_bytes and max_header_lines; zero takes their
	// defaults). A stored message whose header block exceeds them by more
	// than the fields the SMTP server adds is hard-failed without being
	// signed or sent.
	MaxHeaderBytes int
	MaxHeaderLines int
	// Inspector, when it has a scanner, inspects the outgoing mail of
	// servers with an outbound_spam_threshold: mail scoring at least that
	// much, or carrying a threat, is held. AcceptUnscanned sends mail a
	// scanner could not check (inspection.when_unavailable: accept);
	// otherwise it is retried on the message schedule.
	Inspector       Inspector
	AcceptUnscanned bool
}

// SMTPClientOptions returns the smtpclient configuration postal delivers
// with: EHLO as dns.helo_hostname (postal.smtp_hostname when empty), the
// smtp_client timeouts and per-host caps, and opportunistic TLS without
// certificate verification (TLS 1.2 at least).
func SMTPClientOptions(c config.SMTPClient, d config.DNS, p config.Postal, log *slog.Logger, reg prometheus.Registerer) smtpclient.Options {
	helo := d.HeloHostname
	if helo == "" {
		helo = p.SMTPHostname
	}
	return smtpclient.Options{
		HeloHostname:       helo,
		OpenTimeout:        c.OpenTimeout.Duration(),
		ReadTimeout:        c.ReadTimeout.Duration(),
		TLSConfig:          &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, // opportunistic, as Postal's Auto mode
		MaxConnsPerHost:    c.MaxConnectionsPerHost,
		MaxMessagesPerConn: c.MaxMessagesPerConnection,
		IdleTimeout:        c.IdleConnectionTimeout.Duration(),
		Registerer:         reg,
		Log:                log,
	}
}

// Processor delivers outgoing messages. It is safe for concurrent use: the
// worker may run several Handle calls at once.
type Processor struct {
	o         Options
	log       *slog.Logger
	now       func() time.Time
	rand      func() float64
	client    Sender
	ownClient *smtpclient.Client
	res       Resolver
	relays    []endpoint
	conc      int

	headerLimits mailheader.Limits

	servers *ttlCache[int64, *store.Server]
	domains *ttlCache[int64, *store.Domain]
	creds   *ttlCache[int64, *store.Credential]
	pools   *ttlCache[int64, *store.IPPoolRouting]
	mx      *ttlCache[string, mxAnswer]
	ips     *ttlCache[string, ipAnswer]
	signers *signerCache
	events  *Events
	m       *metrics
	journal journalQueue // sent-journal records waiting for their write
}

// New checks o and returns a Processor. It fails when a required option is
// missing, a relay URL is malformed, the resolver cannot be built, or the
// metrics cannot be registered.
func New(o Options) (*Processor, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("outbound: Store is required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = 5 * time.Second
	}
	if o.MXCacheTTL == 0 {
		o.MXCacheTTL = 60 * time.Second
	}
	if o.Postal.DefaultMaximumDeliveryAttempts <= 0 {
		o.Postal.DefaultMaximumDeliveryAttempts = 18
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = config.Defaults().SMTPServer.MaxHeaderBytes
	}
	if o.MaxHeaderLines <= 0 {
		o.MaxHeaderLines = config.Defaults().SMTPServer.MaxHeaderLines
	}
	p := &Processor{o: o, log: o.Log.With("component", "outbound"), now: o.Now, rand: o.Rand, client: o.Client, res: o.Resolver,
		headerLimits: mailheader.Limits{MaxBytes: o.MaxHeaderBytes + headerSlack.MaxBytes, MaxLines: o.MaxHeaderLines + headerSlack.MaxLines}}
	for _, raw := range o.Postal.SMTPRelays {
		r, err := config.ParseSMTPRelay(raw)
		if err != nil {
			return nil, fmt.Errorf("outbound: postal.smtp_relays: %w", err)
		}
		mode, err := smtpclient.ParseSSLMode(r.SSLMode)
		if err != nil {
			return nil, fmt.Errorf("outbound: postal.smtp_relays %s: %w", raw, err)
		}
		p.relays = append(p.relays, endpoint{host: r.Host, port: r.Port, mode: mode, relay: true})
	}
	if p.res == nil && len(p.relays) == 0 {
		r, err := resolver.New(resolver.Options{Nameservers: o.DNS.NameserverAddrs(), ResolvConfPath: o.DNS.ResolvConfPath,
			Timeout: o.DNS.Timeout.Duration()})
		if err != nil {
			return nil, fmt.Errorf("outbound: resolver: %w", err)
		}
		p.res = r
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	p.m = m
	if p.client == nil {
		p.ownClient = smtpclient.New(SMTPClientOptions(o.SMTPClient, o.DNS, o.Postal, o.Log, o.Registerer))
		p.client = p.ownClient
	}
	p.conc = o.Concurrency
	if p.conc <= 0 {
		p.conc = max(4, 2*runtime.GOMAXPROCS(0))
		if c := o.SMTPClient.MaxConnectionsPerHost; c > 0 && p.conc > c {
			p.conc = c
		}
	}
	p.servers = newTTLCache[int64, *store.Server](o.CacheTTL, 4096)
	p.domains = newTTLCache[int64, *store.Domain](o.CacheTTL, 16384)
	p.creds = newTTLCache[int64, *store.Credential](o.CacheTTL, 16384)
	p.pools = newTTLCache[int64, *store.IPPoolRouting](o.CacheTTL, 4096)
	p.mx = newTTLCache[string, mxAnswer](o.MXCacheTTL, 65536)
	p.ips = newTTLCache[string, ipAnswer](o.MXCacheTTL, 65536)
	p.signers = &signerCache{m: map[int64]*signerEntry{}, keys: o.Keys, log: p.log}
	p.events = NewEvents(o.Store, o.CacheTTL, p.log)
	return p, nil
}

// Close closes the SMTP client New built (its pooled connections); a
// Client given in Options is left to its owner. It returns the client's
// close error.
func (p *Processor) Close() error {
	if p.ownClient != nil {
		return p.ownClient.Close()
	}
	return nil
}

// RetryDelay is Postal's retry schedule: 5 minutes x 1.3^attempts, where
// attempts counts the tries already made before the one that failed.
func RetryDelay(attempts int) time.Duration {
	return time.Duration(float64(5*time.Minute) * math.Pow(1.3, float64(attempts)))
}

// verdict is what became of one job.
type verdict int

const (
	vDrop verdict = iota
	vSent
	vSoftFail
	vHardFail
	vHold
	vRetry
)

// result is a job's outcome while Handle works on it; outcome turns it
// into the store.Outcome the worker commits.
type result struct {
	verdict verdict
	d       store.NewDelivery
	// at is the retry time (vSoftFail, vRetry) or the hold expiry (vHold).
	at time.Time
	// details is a vRetry's message details.
	details string
	// release, for a vHold, keeps the queued row due then (a send limit).
	release time.Time
}

// job is one queued message worked on by Handle.
type job struct {
	q   *store.QueuedMessage
	res result
	fx  store.Effects
	// limit is the server's send volume against its limit once this
	// message counts, for the crossing events; nil without a limit.
	limit  *store.SendLimit
	msg    *store.Message
	raw    []byte
	manual bool
	// supLoaded reports that sup, the recipient's suppression entry in
	// force (nil: none), was loaded with the claim.
	supLoaded bool
	sup       *store.Suppression
	server    *store.Server
	domain    *store.Domain
	cred      *store.Credential

	// fail describes a hard delivery failure to report to the sender and
	// suppress the recipient for; nil otherwise.
	fail *failure
	// sentAs is the message as sent (or as it would have been).
	sentAs []byte
}

// failure is what a DSN and a suppression entry need about a hard failure.
type failure struct {
	status    string // enhanced status code, 5.x.x
	diag      string // Diagnostic-Code, "smtp; ..." or ""
	remoteMTA string
	reason    string // suppression reason
}

// Handle delivers a batch of claimed outgoing queued messages (rows for one
// destination domain) and returns one outcome per row, in order, with
// QueuedID, MessageID and Owner (the row's lock owner) filled in. It waits
// for every send it starts; ctx cancellation aborts sends, which soft-fail.
func (p *Processor) Handle(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome {
	now := p.now()
	outs := make([]store.Outcome, len(batch))
	if len(batch) == 0 {
		return outs
	}
	retryAll := func(err error) []store.Outcome {
		for i, q := range batch {
			j := &job{q: q}
			j.internalRetry(now, err)
			outs[i] = j.outcome()
		}
		return outs
	}
	jobs, err := p.load(ctx, batch, now)
	if err != nil {
		p.log.Error("loading batch failed; retrying it later", "err", err, "size", len(batch))
		return retryAll(err)
	}
	var sends []*job
	volumes := map[int64]int64{}
	suppressed, err := p.suppressions(ctx, jobs, now)
	if err != nil {
		p.log.Error("loading suppressions failed; retrying the batch later", "err", err)
		return retryAll(err)
	}
	sent := p.journaled(ctx, jobs)
	for _, j := range jobs {
		if d, ok := sent[j]; ok && j.server != nil {
			// Sent by a claim that died before its outcome committed: the
			// outcome and its effects are built as for a send now, without
			// the send-limit crossing marks (the volume counts it anyway).
			j.res = result{verdict: vSent, d: d}
			continue
		}
		if p.check(ctx, j, now, suppressed, volumes) {
			sends = append(sends, j)
		}
	}
	p.deliver(ctx, sends, now)
	p.finish(ctx, jobs, suppressed, now)
	byRow := make(map[int64]*job, len(jobs))
	for _, j := range jobs {
		byRow[j.q.ID] = j
	}
	for i, q := range batch {
		if j := byRow[q.ID]; j != nil {
			outs[i] = j.outcome()
		} else {
			outs[i] = store.Drop(q) // the message is gone
		}
	}
	return outs
}

// internalRetry makes the job a retry after an internal error, without
// touching the message.
func (j *job) internalRetry(now time.Time, err error) {
	j.res = result{verdict: vRetry, at: now.Add(RetryDelay(j.q.Attempts)), details: "internal error: " + err.Error()}
	j.fx = store.Effects{}
}

// outcome returns the job's outcome with its effects.
func (j *job) outcome() store.Outcome {
	var o store.Outcome
	switch r := j.res; r.verdict {
	case vSent:
		o = store.Sent(j.q, r.d)
	case vSoftFail:
		o = store.SoftFail(j.q, r.at, r.d)
	case vHardFail:
		o = store.HardFail(j.q, r.d)
	case vHold:
		if !r.release.IsZero() {
			o = store.HoldUntil(j.q, r.at, r.release, r.d.Details)
		} else {
			o = store.Hold(j.q, r.at, r.d.Details)
		}
	case vRetry:
		o = store.Retry(j.q, r.at, r.details)
	default:
		o = store.Drop(j.q)
	}
	return o.With(j.fx)
}

// load reads the batch's messages, bodies, manual flags and cached rows:
// what the claim loaded with the row (store.QueuedMessage.Loaded), and for
// rows claimed without it, in three queries (store.LoadUnloaded). A row
// whose message is gone gets its final (empty) outcome here and no job.
func (p *Processor) load(ctx context.Context, batch []*store.QueuedMessage, now time.Time) ([]*job, error) {
	unloaded, err := p.o.Store.LoadUnloaded(ctx, batch)
	if err != nil {
		return nil, err
	}
	jobs := make([]*job, 0, len(batch))
	for _, q := range batch {
		// Only the claim reads the suppression entry; a row read here has
		// it looked up later (supLoaded false).
		l, fromClaim := q.Loaded, true
		if l == nil {
			l, fromClaim = unloaded[q.ID], false
		}
		if l == nil || l.Message == nil {
			continue // the message was deleted: the row is simply dropped
		}
		j := &job{q: q, msg: l.Message, raw: l.Raw, manual: l.Manual, supLoaded: fromClaim, sup: l.Suppression}
		m := j.msg
		var err error
		if j.server, err = p.server(ctx, m.ServerID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if m.DomainID != 0 {
			if j.domain, err = p.domain(ctx, m.DomainID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
		}
		if m.CredentialID != 0 {
			if j.cred, err = p.credential(ctx, m.CredentialID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func (p *Processor) server(ctx context.Context, id int64, now time.Time) (*store.Server, error) {
	if v, ok := p.servers.get(id, now); ok {
		return v, nil
	}
	v, err := p.o.Store.ServerByID(ctx, id)
	if err != nil {
		return nil, err
	}
	p.servers.put(id, v, now)
	return v, nil
}

func (p *Processor) domain(ctx context.Context, id int64, now time.Time) (*store.Domain, error) {
	if v, ok := p.domains.get(id, now); ok {
		return v, nil
	}
	v, err := p.o.Store.DomainByID(ctx, id)
	if err != nil {
		return nil, err
	}
	p.domains.put(id, v, now)
	return v, nil
}

func (p *Processor) credential(ctx context.Context, id int64, now time.Time) (*store.Credential, error) {
	if v, ok := p.creds.get(id, now); ok {
		return v, nil
	}
	v, err := p.o.Store.CredentialByID(ctx, id)
	if err != nil {
		return nil, err
	}
	p.creds.put(id, v, now)
	return v, nil
}

// suppressions returns, per server, the active suppression entries of the
// batch's recipients (check ignores them for rows released by hand; a
// manual send removes the entry): those the claim loaded, and for the other
// rows one query per server.
func (p *Processor) suppressions(ctx context.Context, jobs []*job, now time.Time) (map[int64]map[string]*store.Suppression, error) {
	out := map[int64]map[string]*store.Suppression{}
	byServer := map[int64][]string{}
	for _, j := range jobs {
		if j.msg.RcptTo == "" {
			continue
		}
		srv := j.msg.ServerID
		if !j.supLoaded {
			byServer[srv] = append(byServer[srv], strings.ToLower(j.msg.RcptTo))
			continue
		}
		if out[srv] == nil {
			out[srv] = map[string]*store.Suppression{}
		}
		if j.sup != nil {
			out[srv][strings.ToLower(j.msg.RcptTo)] = j.sup
		}
	}
	for srv, addrs := range byServer {
		m, err := p.o.Store.ActiveSuppressions(ctx, srv, addrs, now)
		if err != nil {
			return nil, err
		}
		if out[srv] == nil {
			out[srv] = m
			continue
		}
		for a, v := range m {
			out[srv][a] = v
		}
	}
	return out, nil
}

// check applies the checks made before sending, in Postal's order, and
// reports whether the message should be sent. When it should not, the
// job's outcome is final.
func (p *Processor) check(ctx context.Context, j *job, now time.Time, suppressed map[int64]map[string]*store.Suppression, volumes map[int64]int64) bool {
	m := j.msg
	switch {
	case j.server == nil:
		// The server is gone (its messages go with it): drop the row.
		return false
	case j.server.Suspended():
		p.hold(j, now, "Mail server has been suspended. No e-mails can be processed at present. Contact support for assistance.")
		return false
	case j.q.Attempts >= p.o.Postal.DefaultMaximumDeliveryAttempts:
		details := fmt.Sprintf("Maximum number of delivery attempts (%d) has been reached.", j.q.Attempts)
		p.hardFail(j, store.NewDelivery{Details: details}, &failure{status: "5.4.7", reason: "too many soft fails"})
		return false
	case j.raw == nil:
		p.hardFail(j, store.NewDelivery{Details: "Raw message has been removed. Cannot send message."}, nil)
		return false
	case m.DomainID != 0 && j.domain == nil:
		p.hardFail(j, store.NewDelivery{Details: "Message's domain no longer exist"}, nil)
		return false
	case strings.TrimSpace(m.RcptTo) == "":
		p.hardFail(j, store.NewDelivery{Details: "Message doesn't have an RCPT to"}, nil)
		return false
	}
	if !j.manual && j.cred != nil && j.cred.Hold {
		p.hold(j, now, "Credential is configured to hold all messages authenticated by it.")
		return false
	}
	if !j.manual {
		if sl := suppressed[m.ServerID][strings.ToLower(m.RcptTo)]; sl != nil {
			p.hold(j, now, fmt.Sprintf("Recipient (%s) is on the suppression list (reason: %s)", m.RcptTo, sl.Reason))
			return false
		}
	}
	if !p.inspect(ctx, j, now) {
		return false
	}
	if limit := j.server.SendLimit; limit != nil && *limit > 0 {
		v, ok := volumes[m.ServerID]
		if !ok {
			n, err := p.o.Store.OutgoingVolume(ctx, m.ServerID, now.Add(-time.Hour))
			if err != nil {
				j.internalRetry(now, err)
				return false
			}
			v = n
		}
		if v >= *limit {
			volumes[m.ServerID] = v
			oldest, err := p.o.Store.CountedAt(ctx, m.ServerID, now.Add(-time.Hour), v-*limit)
			if err != nil {
				j.internalRetry(now, err)
				return false
			}
			release := oldest.Add(time.Hour)
			if !release.After(now) {
				release = now.Add(time.Minute)
			}
			p.hold(j, now, fmt.Sprintf("Message held because send limit (%d) has been reached.", *limit))
			j.res.release = release
			j.limit = &store.SendLimit{ServerID: m.ServerID, Volume: v, Limit: *limit}
			return false
		}
		volumes[m.ServerID] = v + 1
		j.limit = &store.SendLimit{ServerID: m.ServerID, Volume: v + 1, Limit: *limit}
	}
	if !j.manual && j.server.Mode == store.ModeDevelopment {
		p.hold(j, now, "Server is in development mode.")
		return false
	}
	return true
}

// inspect inspects j's message when its server asks for outgoing
// inspection (outbound_spam_threshold) and holds it, unless it was released
// by hand, when it scores at least the threshold or carries a threat, as
// Postal fails it (ours: held, so an operator can release a false
// positive). A message inspected before is judged on the recorded result.
// It reports whether the message may go on.
func (p *Processor) inspect(ctx context.Context, j *job, now time.Time) bool {
	in := p.o.Inspector
	t := j.server.OutboundSpamThreshold
	if in == nil || t == nil || (!in.Spam() && !in.Virus()) || j.manual {
		return true
	}
	var score float64
	var threat bool
	var threatName string
	recorded, err := p.o.Store.Inspections(ctx, []int64{j.msg.ID})
	if err != nil {
		j.internalRetry(now, err)
		return false
	}
	if r := recorded[j.msg.ID]; r != nil && r.Inspected {
		score, threat, threatName = r.SpamScore, r.Threat, r.ThreatDetails
	} else {
		res, err := in.Inspect(ctx, inspect.Envelope{MailFrom: j.msg.MailFrom, RcptTo: j.msg.RcptTo, Token: j.msg.Token, Outgoing: true}, j.raw)
		if err != nil {
			if !p.o.AcceptUnscanned || ctx.Err() != nil {
				j.res = result{verdict: vRetry, at: now.Add(RetryDelay(j.q.Attempts)),
					details: "The message could not be inspected for spam and viruses (" + err.Error() + "); it will be tried again."}
				return false
			}
			p.log.Warn("inspection failed; sending unscanned as inspection.when_unavailable says", "message_id", j.msg.ID, "err", err)
			res = inspect.Result{Skipped: "not scanned: " + err.Error()}
		}
		score, threat, threatName = res.SpamScore, res.Threat, res.ThreatDetails
		rec := &store.NewInspection{Spam: res.SpamChecked && score >= *t, SpamScore: score, Threat: threat,
			ThreatDetails: res.ThreatDetails, Skipped: res.Skipped}
		for _, c := range res.Checks {
			rec.Checks = append(rec.Checks, store.SpamCheck{Code: c.Code, Score: c.Score, Description: c.Description})
		}
		j.fx.Inspection = rec
	}
	switch {
	case score >= *t:
		p.hold(j, now, fmt.Sprintf("Message is likely spam. Threshold is %s and the message scored %s.", rubyFloat(*t), rubyFloat(score)))
		return false
	case threat:
		p.hold(j, now, fmt.Sprintf("Message contains a threat (%s).", threatName))
		return false
	}
	return true
}

// rubyFloat prints f as Ruby prints a Float: "5.0", "2.5".
func rubyFloat(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		s += ".0"
	}
	return s
}

func (p *Processor) hold(j *job, now time.Time, details string) {
	j.res = result{verdict: vHold, at: now.Add(time.Duration(p.o.Postal.DefaultMaximumHoldExpiryDays) * 24 * time.Hour),
		d: store.NewDelivery{Status: store.StatusHeld, Details: details}}
}

// hardFail makes the outcome a final HardFail with d; f, when set, asks for
// a bounce and a suppression entry.
func (p *Processor) hardFail(j *job, d store.NewDelivery, f *failure) {
	d.Status = store.StatusHardFail
	j.res = result{verdict: vHardFail, d: d}
	j.fail = f
}

// softFail makes the outcome a retry, or a HardFail when this was the last
// allowed attempt.
func (p *Processor) softFail(j *job, now time.Time, d store.NewDelivery, f failure) {
	if j.q.Attempts+1 >= p.o.Postal.DefaultMaximumDeliveryAttempts {
		d.Details = strings.TrimSuffix(d.Details, ".") + fmt.Sprintf(". Maximum number of delivery attempts (%d) has been reached.", j.q.Attempts+1)
		f.status, f.reason = "5.4.7", "too many soft fails"
		p.hardFail(j, d, &f)
		return
	}
	d.Status = store.StatusSoftFail
	j.res = result{verdict: vSoftFail, at: now.Add(RetryDelay(j.q.Attempts)), d: d}
}

// finish attaches the effects of each job's outcome: suppression added or
// removed, a bounce to the sender, webhook events; and counts the outcomes.
// Nothing is written here: the worker commits the effects with the outcomes.
func (p *Processor) finish(ctx context.Context, jobs []*job, suppressed map[int64]map[string]*store.Suppression, now time.Time) {
	keep := now.Add(time.Duration(p.o.Postal.DefaultSuppressionListAutomaticRemovalDays) * 24 * time.Hour)
	for _, j := range jobs {
		if j.res.verdict == vRetry || j.res.verdict == vDrop {
			continue
		}
		d := &j.res.d
		if j.fail != nil && j.msg.Scope == store.ScopeOutgoing {
			j.fx.Suppress = append(j.fx.Suppress, store.NewSuppression{ServerID: j.msg.ServerID, Address: j.msg.RcptTo,
				Reason: j.fail.reason, KeepUntil: keep})
			d.Details = strings.TrimSuffix(d.Details, ".") + ". Recipient added to suppression list."
			if !j.msg.Bounce && j.msg.MailFrom != "" {
				if sub, ok := p.bounce(j, now); ok {
					j.fx.Bounces = append(j.fx.Bounces, sub)
					p.m.bounces.Inc()
				}
			}
		}
		if j.manual && j.res.verdict == vSent && suppressed[j.msg.ServerID][strings.ToLower(j.msg.RcptTo)] != nil {
			j.fx.Unsuppress = append(j.fx.Unsuppress, store.Unsuppression{ServerID: j.msg.ServerID, Address: j.msg.RcptTo})
			d.Details += " Recipient removed from suppression list."
		}
		if name := DeliveryEvent(d.Status); name != "" {
			j.fx.Webhooks = append(j.fx.Webhooks, p.events.Requests(ctx, now,
				Event{ServerID: j.msg.ServerID, MessageID: j.msg.ID, Name: name, Payload: DeliveryPayload(j.msg, d, now)})...)
		}
		if j.limit != nil && j.server != nil {
			sl := *j.limit
			payload := webhook.SendLimit{Server: ServerPayload(j.server), Volume: sl.Volume, Limit: sl.Limit}
			sl.Approaching = p.events.Requests(ctx, now, Event{ServerID: sl.ServerID, Name: webhook.EventSendLimitApproaching, Payload: payload})
			sl.Exceeded = p.events.Requests(ctx, now, Event{ServerID: sl.ServerID, Name: webhook.EventSendLimitExceeded, Payload: payload})
			j.fx.SendLimit = &sl
		}
		label := "unknown"
		if j.server != nil {
			label = j.server.Path()
		}
		p.m.outcomes.WithLabelValues(label, strings.ToLower(d.Status)).Inc()
	}
}
