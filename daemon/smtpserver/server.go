package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/mailheader"
	"github.com/postalgo/postal/daemon/store"
)

// Store is what the SMTP server reads from the database. Every method
// returns an error wrapping store.ErrNotFound when the record does not
// exist.
type Store interface {
	CredentialByKey(ctx context.Context, typ, key string) (*store.Credential, error)
	Credentials(ctx context.Context, serverID int64, typ string) ([]*store.Credential, error)
	TouchCredential(ctx context.Context, id int64) error
	ServerByID(ctx context.Context, id int64) (*store.Server, error)
	ServerByToken(ctx context.Context, token string) (*store.Server, error)
	Domains(ctx context.Context, serverID int64) ([]*store.Domain, error)
	DomainsNamed(ctx context.Context, name string) ([]*store.Domain, error)
	RouteByToken(ctx context.Context, token string) (*store.Route, error)
	RouteForAddress(ctx context.Context, localPart, domain string) (*store.Route, error)
	ReturnPathRoute(ctx context.Context, serverID int64) (*store.Route, error)
	MessageByToken(ctx context.Context, token string) (*store.Message, error)
}

// Intake makes an accepted message durable (daemon/intake). Submit returns
// nil only once the submission is committed.
type Intake interface {
	Submit(ctx context.Context, sub store.Submission) ([]store.Accepted, error)
}

// Options configures a Server.
type Options struct {
	// Config is the smtp_server section; zero limits take Postal's defaults.
	Config config.SMTPServer
	// Postal is the postal section (smtp_hostname names this server).
	Postal config.Postal
	// DNS is the dns section (return-path and route domains, DNS timeout).
	DNS config.DNS
	// Store is required.
	Store Store
	// Intake is required.
	Intake Intake
	// Ready reports whether mail can be made durable (postald: the database
	// is reachable and migrated; Redis is not asked); a non-nil error makes
	// MAIL and the end of DATA answer 451 4.3.0. Nil means always ready.
	Ready func() error
	// Log receives connection logs and errors; nil discards.
	Log *slog.Logger
	// Registerer receives the server's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock (Received dates, caches, AUTH failure window);
	// default time.Now.
	Now func() time.Time
	// Listener, when set, is served instead of listening on
	// Config.DefaultBindAddress:DefaultPort. Run closes it.
	Listener net.Listener
	// LookupAddr resolves a client address to host names for the Received
	// header, at most once per connection and once per address per
	// CacheTTL (a missing record is cached too, a failure is not); default
	// net.DefaultResolver.LookupAddr, bounded by DNS.Timeout.
	LookupAddr func(ctx context.Context, addr string) ([]string, error)
	// AuthFailures, when set, counts AUTH failures per client key (IPv4
	// address or IPv6 /64) across every smtp-server process (postald
	// passes a Redis sliding window: ratelimit.Window). The process's own
	// window is always kept too, so a Redis failure never lifts the limit.
	AuthFailures Limiter
	// CacheTTL is how long database lookups are reused; default 5 s.
	CacheTTL time.Duration
	// ShutdownGrace is how long Run lets sessions finish once its context
	// ends; default 30 s.
	ShutdownGrace time.Duration
}

// Limiter counts events per subject over a window shared by every
// smtp-server process; *ratelimit.Window is one. Acquire checks the limit
// and counts one event in a single atomic step (false: the limit is
// reached and nothing was counted); Release takes back the event Acquire
// returned the token of.
type Limiter interface {
	Exceeded(ctx context.Context, subject string) (bool, error)
	Acquire(ctx context.Context, subject string) (token string, ok bool, err error)
	Release(ctx context.Context, subject, token string) error
}

// MaxLineLength bounds one command line, and one line of message data, in
// bytes. RFC 5321 allows 1000; the margin accepts sloppy generators of long
// HTML lines while keeping what an unterminated line can cost bounded.
const MaxLineLength = 1 << 20

// proxyHeaderTimeout bounds the wait for a PROXY header.
const proxyHeaderTimeout = 10 * time.Second

// Server is the smtp-server role. Create it with New and start it with Run.
type Server struct {
	o          Options
	log        *slog.Logger
	ln         net.Listener
	smtp       *smtp.Server
	tlsEnabled bool
	cert       atomic.Pointer[tls.Certificate]
	logExclude *regexp.Regexp
	maxBytes   int64

	headerLimits mailheader.Limits
	inFlight     *budget

	lookups      *lookups
	authFails    *failureWindow
	proxyTrusted []netip.Prefix
	// untrustedWarned is when (Unix seconds) a refused untrusted peer was
	// last logged at warning level.
	untrustedWarned atomic.Int64
	conns           *connTable
	metrics         *metrics

	started atomic.Bool
}

// New validates o, loads the TLS certificate when TLS is enabled, and binds
// the listener (unless o.Listener is given), so a port already in use or a
// broken certificate is reported here rather than in Run.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Intake == nil {
		return nil, errors.New("smtpserver: Store and Intake are required")
	}
	def := config.Defaults().SMTPServer
	c := &o.Config
	fillInt(&c.MaxMessageSize, def.MaxMessageSize)
	fillInt(&c.MaxRecipients, def.MaxRecipients)
	fillInt(&c.MaxConnections, def.MaxConnections)
	fillInt(&c.MaxConnectionsPerIP, def.MaxConnectionsPerIP)
	fillInt(&c.MaxCommands, def.MaxCommands)
	fillInt(&c.MaxBadCommands, def.MaxBadCommands)
	fillInt(&c.AuthMaxFailures, def.AuthMaxFailures)
	fillInt(&c.MaxHeaderBytes, def.MaxHeaderBytes)
	fillInt(&c.MaxHeaderLines, def.MaxHeaderLines)
	fillInt(&c.MaxInFlightSize, def.MaxInFlightSize)
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = def.IdleTimeout
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = def.DataTimeout
	}
	if c.AuthFailureWindow <= 0 {
		c.AuthFailureWindow = def.AuthFailureWindow
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LookupAddr == nil {
		o.LookupAddr = net.DefaultResolver.LookupAddr
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 5 * time.Second
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 30 * time.Second
	}
	if o.DNS.Timeout <= 0 {
		o.DNS.Timeout = config.Defaults().DNS.Timeout
	}
	if o.Postal.SMTPHostname == "" {
		o.Postal.SMTPHostname = config.Defaults().Postal.SMTPHostname
	}

	s := &Server{
		o:          o,
		log:        o.Log.With("role", "smtp-server"),
		tlsEnabled: c.TLSEnabled,
		maxBytes:   c.MaxMessageBytes(),
		lookups:    newLookups(o.Store, o.CacheTTL, o.Now),
		authFails:  newFailureWindow(c.AuthMaxFailures, c.AuthFailureWindow.Duration(), o.Now),
		metrics:    newMetrics(),
		conns:      newConnTable(c.MaxConnections, c.MaxConnectionsPerIP),

		headerLimits: mailheader.Limits{MaxBytes: c.MaxHeaderBytes, MaxLines: c.MaxHeaderLines},
		inFlight:     newBudget(c.MaxInFlightBytes(), c.MaxMessageBytes(), o.Log),
	}
	if c.ProxyProtocol {
		if len(c.ProxyProtocolTrusted) == 0 {
			c.ProxyProtocolTrusted = def.ProxyProtocolTrusted
		}
		nets, err := parseNetworks("smtp_server.proxy_protocol_trusted", c.ProxyProtocolTrusted)
		if err != nil {
			return nil, fmt.Errorf("smtpserver: %w", err)
		}
		s.proxyTrusted = nets
	}
	if c.LogIPAddressExclusionMatcher != "" {
		re, err := regexp.Compile(c.LogIPAddressExclusionMatcher)
		if err != nil {
			return nil, fmt.Errorf("smtpserver: smtp_server.log_ip_address_exclusion_matcher: %w", err)
		}
		s.logExclude = re
	}
	if s.tlsEnabled {
		if err := s.Reload(); err != nil {
			return nil, err
		}
	}
	srv := smtp.NewServer(backend{s: s})
	srv.Domain = o.Postal.SMTPHostname
	srv.MaxMessageBytes = s.maxBytes
	srv.MaxRecipients = c.MaxRecipients
	srv.MaxLineLength = MaxLineLength
	// AUTH policy (TLS first unless loopback) is decided per session in
	// AuthMechanisms and Auth; go-smtp's global switch would forbid AUTH in
	// the clear even when TLS is not configured, which Postal allows.
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = c.IdleTimeout.Duration()
	srv.WriteTimeout = c.IdleTimeout.Duration()
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = errorLog{log: s.log}
	if s.tlsEnabled {
		srv.TLSConfig = &tls.Config{
			GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
				if tc, ok := h.Conn.(*trackedConn); ok {
					tc.tlsStarted.Store(true)
				}
				return s.cert.Load(), nil
			},
		}
	}
	s.smtp = srv

	if o.Listener != nil {
		s.ln = o.Listener
	} else {
		addr := net.JoinHostPort(c.DefaultBindAddress, strconv.Itoa(c.DefaultPort))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("smtpserver: listen on %s: %w", addr, err)
		}
		s.ln = ln
	}
	if o.Registerer != nil {
		if err := errors.Join(s.metrics.register(o.Registerer), o.Registerer.Register(s.inFlight.gauge())); err != nil {
			if o.Listener == nil {
				_ = s.ln.Close()
			}
			return nil, fmt.Errorf("smtpserver: register metrics: %w", err)
		}
	}
	return s, nil
}

func fillInt(v *int, def int) {
	if *v <= 0 {
		*v = def
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Reload reads the TLS certificate and key again (on SIGHUP). New handshakes
// use the new pair; established connections keep theirs. On error the
// previous certificate stays in use. It does nothing when TLS is disabled.
func (s *Server) Reload() error {
	if !s.tlsEnabled {
		return nil
	}
	c := s.o.Config
	cert, err := tls.LoadX509KeyPair(c.TLSCertificatePath, c.TLSPrivateKeyPath)
	if err != nil {
		return fmt.Errorf("smtpserver: load TLS certificate %s and key %s: %w", c.TLSCertificatePath, c.TLSPrivateKeyPath, err)
	}
	s.cert.Store(&cert)
	return nil
}

// Run serves SMTP until ctx ends, then stops accepting connections, gives
// sessions Options.ShutdownGrace to finish the message they are receiving
// (idle ones are told 421 at once), closes what remains and returns once
// every session has ended. It returns an error only when the listener fails
// for a reason other than shutdown; Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("smtpserver: Run called twice")
	}
	s.log.Info("listening", "addr", s.ln.Addr().String(), "tls", s.tlsEnabled, "proxy_protocol", s.o.Config.ProxyProtocol)
	handoff := newChanListener(s.ln.Addr())
	serveDone := make(chan error, 1)
	go func() { serveDone <- s.smtp.Serve(handoff) }()

	acceptCtx, stopAccept := context.WithCancel(ctx)
	defer stopAccept()
	var admitting sync.WaitGroup
	acceptErr := make(chan error, 1)
	go func() { acceptErr <- s.acceptLoop(acceptCtx, handoff, &admitting) }()

	var runErr error
	select {
	case <-ctx.Done():
		_ = s.ln.Close()
		stopAccept()
		<-acceptErr // nil: the loop ends because we closed its listener
	case runErr = <-acceptErr:
		_ = s.ln.Close()
		stopAccept()
	}
	admitting.Wait()
	handoff.Close()

	s.conns.drainAll()
	shutdown := make(chan error, 1)
	go func() { shutdown <- s.smtp.Shutdown(context.Background()) }()
	grace := time.NewTimer(s.o.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-shutdown:
	case <-grace.C:
		n := s.conns.closeAll()
		s.log.Warn("shutdown grace period over; closed sessions still running", "sessions", n)
		<-shutdown
	}
	<-serveDone
	s.log.Info("stopped")
	return runErr
}

// errorLog routes go-smtp's internal error reports to slog: panics it
// recovered at error level, connection errors (a client that went away) at
// debug level.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.report(fmt.Sprintf(format, v...)) }

func (e errorLog) Println(v ...any) { e.report(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (e errorLog) report(msg string) {
	if strings.Contains(msg, "panic") {
		e.log.Error("smtp engine recovered a panic", "detail", msg)
		return
	}
	e.log.Debug("smtp connection error", "detail", msg)
}
