package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postalgo/postal/daemon/mailheader"
	"github.com/postalgo/postal/daemon/store"
)

// backend creates a session per EHLO/HELO (go-smtp starts a new one after
// STARTTLS).
type backend struct{ s *Server }

// NewSession starts a session on an admitted connection.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	tc := trackedConnOf(c)
	if tc == nil {
		return nil, errors.New("connection was not admitted")
	}
	tc.engine.Store(c)
	ctx, cancel := context.WithCancel(context.Background())
	sess := &session{srv: b.s, conn: c, tc: tc, ctx: ctx, cancel: cancel}
	if st, ok := c.TLSConnectionState(); ok {
		sess.tls, sess.tlsState = true, st
		if tc.tlsSeen.CompareAndSwap(false, true) {
			b.s.metrics.tlsConnections.Inc()
		}
	}
	if err := sess.count(); err != nil {
		cancel()
		return nil, err
	}
	return sess, nil
}

// trackedConnOf finds the admitted connection under c, looking through
// the TLS layer STARTTLS adds.
func trackedConnOf(c *smtp.Conn) *trackedConn {
	nc := c.Conn()
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	tc, _ := nc.(*trackedConn)
	return tc
}

// session is one go-smtp session: the transaction in progress and the
// credential in use. go-smtp calls it from the connection's goroutine,
// except Data for BDAT, which runs on its own goroutine; mu guards the
// fields both may touch.
type session struct {
	srv      *Server
	conn     *smtp.Conn
	tc       *trackedConn
	ctx      context.Context
	cancel   context.CancelFunc
	tls      bool
	tlsState tls.ConnectionState

	mu       sync.Mutex
	cred     *store.Credential
	viaAuth  bool // cred came from AUTH (not an SMTP-IP match)
	from     string
	sizeHint int64 // the SIZE announced with MAIL, 0 when none
	rcpts    []recipient
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

func (s *session) credential() *store.Credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cred
}

func (s *session) useIPCredential(c *store.Credential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cred == nil {
		s.cred = c
	}
}

// count refuses the command when the connection has sent more than
// max_commands command lines. The lines are counted, and the connection
// told 421 and closed, as they are read (trackedConn.SetReadDeadline), so
// NOOP, VRFY and HELP, which never reach the session, count too; this
// check only keeps go-smtp from acting on a command after that.
func (s *session) count() error {
	if s.tc.commands.Load() > int64(s.srv.o.Config.MaxCommands) {
		return errTooManyCmds.err
	}
	return nil
}

// reject turns a refusal into go-smtp's error. A refusal that is the
// client's fault counts against max_bad_commands; the one that reaches it
// is answered, followed by 421, and the connection is closed.
func (s *session) reject(err error) error {
	var r refusal
	if !errors.As(err, &r) {
		r = errTemporary
	}
	s.srv.metrics.clientErrors.WithLabelValues(r.label).Inc()
	if !r.temporary() && s.tc.bad.Add(1) >= int64(s.srv.o.Config.MaxBadCommands) {
		s.hangup(r.err, errTooManyBad.err)
	}
	return r.err
}

// hangup writes replies straight to the client and closes the socket
// (trackedConn.hangup). go-smtp's own reply to the current command then
// goes nowhere and its next read fails, which ends the connection.
func (s *session) hangup(replies ...*smtp.SMTPError) {
	s.tc.hangup(replies...)
}

// authAllowed: with TLS configured AUTH needs STARTTLS first, except from
// loopback; without it AUTH works in the clear, as in Postal.
func (s *session) authAllowed() bool {
	return !s.srv.tlsEnabled || s.tls || s.tc.ip.IsLoopback()
}

// AuthMechanisms lists PLAIN and LOGIN when AUTH is allowed now.
func (s *session) AuthMechanisms() []string {
	if !s.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts an AUTH exchange, unless TLS must come first or the client
// address failed too often recently.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if err := s.count(); err != nil {
		return nil, err
	}
	switch {
	case !s.authAllowed():
		return nil, s.reject(errAuthNeedsTLS)
	case s.authBlocked():
		return nil, s.reject(errAuthRateLimit)
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return &plainServer{authenticate: s.authenticate, protocolError: s.authProtocolError}, nil
	case sasl.Login:
		return &loginServer{authenticate: s.authenticate, protocolError: s.authProtocolError}, nil
	}
	return nil, s.reject(errAuthMechanism)
}

// authBlocked reports whether the client failed AUTH too often recently,
// in this process or (with Options.AuthFailures) in any. It only reads: it
// spares a blocked client the exchange, while authenticate's reservation
// is what enforces the limit.
func (s *session) authBlocked() bool {
	if s.srv.authFails.blocked(s.tc.key) {
		return true
	}
	if l := s.srv.o.AuthFailures; l != nil && s.tc.key.IsValid() {
		ctx, cancel := context.WithTimeout(s.ctx, sharedLimitTimeout)
		defer cancel()
		x, err := l.Exceeded(ctx, s.tc.key.String())
		if err != nil {
			s.srv.log.Warn("shared AUTH failure count unavailable; using this process's", "err", err)
		}
		return x
	}
	return false
}

// sharedLimitTimeout bounds one call to the shared AUTH failure count, so
// that a Redis that hangs delays an AUTH by at most this much before the
// process's own count decides alone.
const sharedLimitTimeout = 500 * time.Millisecond

// reserveAuthAttempt counts one AUTH failure for the client before its
// password is checked, in this process's window and the shared one, each
// in one atomic step with the check of its limit; so parallel attempts
// from one client get no more tries than the limit between them. It
// returns false (nothing counted) when either limit is reached, else a
// function that takes the attempt back (for a success, or a failure of
// ours). Without Redis the process's window still counts.
func (s *session) reserveAuthAttempt() (release func(), ok bool) {
	key := s.tc.key
	local, ok := s.srv.authFails.acquire(key)
	if !ok {
		return nil, false
	}
	var shared string
	l := s.srv.o.AuthFailures
	if l != nil && key.IsValid() {
		ctx, cancel := context.WithTimeout(s.ctx, sharedLimitTimeout)
		token, ok, err := l.Acquire(ctx, key.String())
		cancel()
		switch {
		case err != nil:
			s.srv.log.Warn("shared AUTH failure count unavailable; using this process's", "err", err)
		case !ok:
			s.srv.authFails.release(key, local)
			return nil, false
		default:
			shared = token
		}
	}
	return func() {
		s.srv.authFails.release(key, local)
		if shared != "" {
			ctx, cancel := context.WithTimeout(s.ctx, sharedLimitTimeout)
			defer cancel()
			if err := l.Release(ctx, key.String(), shared); err != nil {
				s.srv.log.Warn("taking back a shared AUTH attempt failed", "err", err)
			}
		}
	}, true
}

// authenticate checks password against the SMTP credentials' keys. The
// attempt counts as a failure unless it succeeds.
func (s *session) authenticate(password string) error {
	release, ok := s.reserveAuthAttempt()
	if !ok {
		return s.reject(errAuthRateLimit)
	}
	var cred *store.Credential
	found := false
	if password != "" {
		var err error
		if cred, found, err = s.srv.lookups.credentialByKey(s.ctx, password); err != nil {
			release()
			s.srv.log.Error("credential lookup failed", "err", err)
			return s.reject(errAuthTemporary)
		}
	}
	if !found {
		s.srv.log.Warn("AUTH failure", "remote", s.tc.ip.String())
		return s.reject(errAuthInvalid)
	}
	release()
	s.mu.Lock()
	s.cred, s.viaAuth = cred, true
	s.mu.Unlock()
	if err := s.srv.lookups.touch(s.ctx, cred); err != nil {
		s.srv.log.Warn("recording credential use failed", "credential", cred.UUID, "err", err)
	}
	return nil
}

func (s *session) authProtocolError() error { return s.reject(errAuthProtocol) }

// Mail starts a transaction, unless storage is known to be down.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := s.count(); err != nil {
		return err
	}
	if err := checkReversePath(from); err != nil {
		return s.reject(err)
	}
	if err := s.srv.ready(); err != nil {
		s.srv.log.Debug("refusing mail: not ready", "err", err)
		return s.reject(errTemporary)
	}
	var size int64
	if opts != nil {
		size = opts.Size
	}
	s.mu.Lock()
	s.from, s.rcpts, s.sizeHint = from, s.rcpts[:0], size
	s.mu.Unlock()
	return nil
}

// Rcpt classifies and adds a recipient, or refuses it.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.count(); err != nil {
		return err
	}
	r, err := s.srv.resolveRecipient(s.ctx, s, to)
	if err != nil {
		return s.reject(err)
	}
	s.mu.Lock()
	s.rcpts = append(s.rcpts, r)
	s.mu.Unlock()
	return nil
}

// Data receives the message and returns nil only once it is durable.
func (s *session) Data(r io.Reader) error {
	if err := s.count(); err != nil {
		return err
	}
	s.mu.Lock()
	sizeHint := s.sizeHint
	s.mu.Unlock()
	s.tc.enterData(s.srv.o.Config.DataTimeout.Duration())
	held := &hold{b: s.srv.inFlight}
	defer held.release()
	body, err := receive(r, s.srv.maxBytes, sizeHint, s.srv.headerLimits, held)
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge) || errors.Is(err, errTooBig):
		return s.reject(messageTooLarge(s.srv.o.Config.MaxMessageSize))
	case errors.Is(err, errHeaderTooLarge):
		return s.reject(errHeaderTooLarge)
	case errors.Is(err, errInFlightFull):
		s.srv.log.Warn("refusing message: in-flight budget exhausted", "remote", s.tc.ip.String(), "in_flight_bytes", s.srv.InFlightBytes())
		return s.reject(errInFlightFull)
	case errors.Is(err, smtp.ErrTooLongLine):
		return s.reject(errLineTooLong)
	case isTimeout(err):
		s.tc.refuse(errDataTimeout)
		return errDataTimeout.err
	case err != nil:
		// The client went away or aborted the transfer: nothing is stored.
		s.srv.metrics.clientErrors.WithLabelValues(errDataIncomplete.label).Inc()
		return errDataIncomplete.err
	}
	return s.accept(body, held)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// accept checks the message, adds Postal's header fields and submits it;
// the stored copy is reserved in held.
func (s *session) accept(body []byte, held *hold) error {
	start := time.Now()
	srv := s.srv
	if err := srv.ready(); err != nil {
		srv.log.Debug("refusing message: not ready", "err", err)
		return s.reject(errTemporary)
	}
	s.mu.Lock()
	from, rcpts, cred, viaAuth := s.from, append([]recipient(nil), s.rcpts...), s.cred, s.viaAuth
	s.mu.Unlock()

	h := mailheader.Parse(body)
	if receivedBy(h, srv.o.Postal.SMTPHostname)+1 > 4 {
		return s.reject(errLoop)
	}
	var (
		domain  *store.Domain
		privacy bool
	)
	if cred != nil {
		owner, found, err := srv.lookups.server(s.ctx, cred.ServerID)
		if err != nil {
			return s.reject(srv.lookupFailed(err))
		}
		if !found {
			return s.reject(errFromInvalid)
		}
		domains, err := srv.lookups.domains(s.ctx, owner.ID)
		if err != nil {
			return s.reject(srv.lookupFailed(err))
		}
		if domain = authenticatedDomain(domains, owner.AllowSender, h); domain == nil {
			return s.reject(errFromInvalid)
		}
		privacy = owner.PrivacyMode
	}

	tokens := make([]string, len(rcpts))
	for i := range tokens {
		tokens[i] = store.RandomToken(8)
	}
	host := srv.o.Postal.SMTPHostname
	msgID := messageID(h)
	var extra []string
	if msgID == "" {
		msgID = newMessageID(host)
		extra = append(extra, "Message-ID: <"+msgID+">")
	}
	extra = append(extra, "X-Postal-MsgID: "+tokens[0])
	received := s.received(privacy, viaAuth)
	if !held.grow(int64(assembledSize(body, received, extra))) {
		s.srv.log.Warn("refusing message: in-flight budget exhausted", "remote", s.tc.ip.String(), "in_flight_bytes", s.srv.InFlightBytes())
		return s.reject(errInFlightFull)
	}
	raw := assemble(body, h, received, extra)

	subj := subject(h)
	mailFrom := mailheader.Clean(from, storedTextLimit)
	msgs := make([]store.NewMessage, len(rcpts))
	for i, r := range rcpts {
		m := store.NewMessage{
			ServerID:        r.serverID,
			RcptTo:          mailheader.Clean(r.rcptTo, storedTextLimit),
			MailFrom:        mailFrom,
			Subject:         subj,
			MessageID:       msgID,
			Token:           tokens[i],
			ReceivedWithSSL: s.tls,
			Queue:           true,
			QueueDomain:     mailheader.Clean(r.domain, 255),
		}
		switch r.kind {
		case kindOutgoing:
			m.Scope, m.CredentialID = store.ScopeOutgoing, r.credentialID
			if domain != nil {
				m.DomainID = domain.ID
			}
		case kindIncoming:
			m.Scope, m.RouteID, m.DomainID = store.ScopeIncoming, r.routeID, r.domainID
		case kindBounce:
			m.Scope, m.Bounce, m.BounceForID, m.RouteID = store.ScopeIncoming, true, r.bounceForID, r.routeID
		}
		msgs[i] = m
	}
	if _, err := srv.o.Intake.Submit(s.ctx, store.Submission{Raw: raw, Messages: msgs}); err != nil {
		srv.log.Error("storing message failed", "remote", s.tc.ip.String(), "recipients", len(msgs), "err", err)
		return s.reject(errTemporary)
	}
	s.tc.messages.Add(1)
	tlsLabel := "no"
	if s.tls {
		tlsLabel = "yes"
	}
	for _, r := range rcpts {
		srv.metrics.messages.WithLabelValues(r.kind.String(), tlsLabel).Inc()
	}
	srv.metrics.acceptSeconds.Observe(time.Since(start).Seconds())
	srv.log.Debug("message accepted", "remote", s.tc.ip.String(), "token", tokens[0], "recipients", len(msgs), "size", len(raw))
	return nil
}

// received is the Received field this server adds: who the client is
// (left out for a privacy-mode server, as Postal does), the protocol per
// RFC 3848 with the TLS version and cipher, and the date.
func (s *session) received(privacy, viaAuth bool) string {
	var b strings.Builder
	b.WriteString("Received: ")
	if !privacy {
		helo := hostnameText(s.conn.Hostname())
		if helo == "" {
			helo = "unknown"
		}
		ip := "unknown"
		if s.tc.ip.IsValid() {
			ip = s.tc.ip.String()
		}
		fmt.Fprintf(&b, "from %s (%s [%s])\r\n\t", helo, s.tc.reverseName(s.ctx), ip)
	}
	proto := "ESMTP"
	if s.tls {
		proto += "S"
	}
	if viaAuth {
		proto += "A"
	}
	fmt.Fprintf(&b, "by %s with %s", s.srv.o.Postal.SMTPHostname, proto)
	if s.tls {
		fmt.Fprintf(&b, "\r\n\t(using %s with cipher %s)", strings.ReplaceAll(tls.VersionName(s.tlsState.Version), " ", "v"),
			tls.CipherSuiteName(s.tlsState.CipherSuite))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", s.srv.o.Now().UTC().Format(time.RFC1123Z))
	return b.String()
}

// Reset ends the transaction (RSET, a new EHLO, or the end of DATA or
// BDAT) and with it any message being received.
func (s *session) Reset() {
	s.mu.Lock()
	s.from, s.rcpts = "", s.rcpts[:0]
	s.mu.Unlock()
	s.tc.leaveData()
}

// Logout ends the session.
func (s *session) Logout() error {
	s.cancel()
	return nil
}

func (s *Server) ready() error {
	if s.o.Ready == nil {
		return nil
	}
	return s.o.Ready()
}
