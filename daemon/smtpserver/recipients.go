package smtpserver

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/postalgo/postal/daemon/store"
)

// refusal is a reply refusing a command, with the name Postal's metrics
// give the error.
type refusal struct {
	label string
	err   *smtp.SMTPError
}

func (r refusal) Error() string { return r.err.Error() }

func refuse(label string, code int, enhanced smtp.EnhancedCode, text string) refusal {
	return refusal{label: label, err: &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: text}}
}

// temporary reports whether the refusal is our own temporary failure
// rather than the client's fault.
func (r refusal) temporary() bool { return r.err.Code/100 == 4 }

// The refusals a session gives; texts are Postal's where Postal has one.
var (
	errInvalidRcpt    = refuse("invalid-rcpt-to", 501, smtp.EnhancedCode{5, 1, 3}, "Invalid RCPT TO")
	errServerToken    = refuse("invalid-server-token", 550, smtp.EnhancedCode{5, 1, 1}, "Invalid server token")
	errRouteToken     = refuse("invalid-route-token", 550, smtp.EnhancedCode{5, 1, 1}, "Invalid route token")
	errRouteRejects   = refuse("route-rejected", 550, smtp.EnhancedCode{5, 7, 1}, "Route does not accept incoming messages")
	errSuspended      = refuse("server-suspended", 535, smtp.EnhancedCode{5, 7, 1}, "Mail server has been suspended")
	errRelay          = refuse("authentication-required", 530, smtp.EnhancedCode{5, 7, 0}, "Authentication required")
	errTemporary      = refuse("temporary-failure", 451, smtp.EnhancedCode{4, 3, 0}, "Temporary failure, please try again later")
	errLoop           = refuse("loop-detected", 550, smtp.EnhancedCode{5, 4, 6}, "Loop detected")
	errFromInvalid    = refuse("from-name-invalid", 530, smtp.EnhancedCode{5, 7, 1}, "From/Sender name is not valid")
	errLineTooLong    = refuse("line-too-long", 500, smtp.EnhancedCode{5, 4, 0}, "Line too long")
	errAuthInvalid    = refuse("invalid-credentials", 535, smtp.EnhancedCode{5, 7, 8}, "Invalid credential")
	errAuthProtocol   = refuse("missing-credentials", 535, smtp.EnhancedCode{5, 7, 8}, "Authentication failed - protocol error")
	errAuthTemporary  = refuse("auth-temporary-failure", 454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure")
	errAuthRateLimit  = refuse("auth-rate-limited", 454, smtp.EnhancedCode{4, 7, 0}, "Too many failed authentication attempts, try again later")
	errAuthNeedsTLS   = refuse("auth-requires-tls", 530, smtp.EnhancedCode{5, 7, 0}, "Must issue a STARTTLS command first")
	errAuthMechanism  = refuse("auth-unknown-mechanism", 504, smtp.EnhancedCode{5, 5, 4}, "Unsupported authentication mechanism")
	errTooManyCmds    = refuse("too-many-commands", 421, smtp.EnhancedCode{4, 7, 0}, "Too many commands, closing connection")
	errTooManyBad     = refuse("too-many-bad-commands", 421, smtp.EnhancedCode{4, 7, 0}, "Too many bad commands, closing connection")
	errDataTimeout    = refuse("data-timeout", 421, smtp.EnhancedCode{4, 4, 2}, "Timeout receiving the message, closing connection")
	errDataIncomplete = refuse("data-incomplete", 451, smtp.EnhancedCode{4, 3, 0}, "Message not received completely")
)

// Refusals of addresses over the RFC 5321 limits (section 4.5.3.1): a path
// of 256 octets with its angle brackets, a local part of 64, a domain of
// 255. RCPT answers with 5.1.3 (bad destination address syntax), MAIL with
// 5.1.7 (bad sender address syntax).
var (
	errRcptPathTooLong   = refuse("path-too-long", 501, smtp.EnhancedCode{5, 1, 3}, "Path too long")
	errRcptLocalTooLong  = refuse("local-part-too-long", 501, smtp.EnhancedCode{5, 1, 3}, "Local part too long")
	errRcptDomainTooLong = refuse("domain-too-long", 501, smtp.EnhancedCode{5, 1, 3}, "Domain too long")
	errMailPathTooLong   = refuse("path-too-long", 501, smtp.EnhancedCode{5, 1, 7}, "Path too long")
	errMailLocalTooLong  = refuse("local-part-too-long", 501, smtp.EnhancedCode{5, 1, 7}, "Local part too long")
	errMailDomainTooLong = refuse("domain-too-long", 501, smtp.EnhancedCode{5, 1, 7}, "Domain too long")
	errNoPostmaster      = refuse("postmaster-unavailable", 550, smtp.EnhancedCode{5, 1, 1}, "No postmaster mailbox is configured here")
)

// RFC 5321 section 4.5.3.1 lengths, in octets.
const (
	maxPath      = 256 - 2 // the path counts its angle brackets
	maxLocalPart = 64
	maxDomain    = 255
)

// checkPath applies the RFC 5321 lengths to a path go-smtp has parsed
// (without its brackets), returning the matching refusal.
func checkPath(addr string, path, local, domain refusal) error {
	at := strings.LastIndexByte(addr, '@')
	switch {
	case at > maxLocalPart || at < 0 && len(addr) > maxLocalPart:
		return local
	case at >= 0 && len(addr)-at-1 > maxDomain:
		return domain
	case len(addr) > maxPath:
		return path
	}
	return nil
}

// checkReversePath applies the RFC 5321 lengths to MAIL FROM; the null
// path passes.
func checkReversePath(from string) error {
	return checkPath(from, errMailPathTooLong, errMailLocalTooLong, errMailDomainTooLong)
}

// messageTooLarge is Postal's reply to a message over max_message_size.
func messageTooLarge(megabytes int) refusal {
	return refuse("message-too-large", 552, smtp.EnhancedCode{5, 3, 4}, "Message too large (maximum size "+strconv.Itoa(megabytes)+"MB)")
}

// recipientKind says what a recipient address is.
type recipientKind int

const (
	kindOutgoing recipientKind = iota
	kindIncoming
	kindBounce
)

func (k recipientKind) String() string {
	switch k {
	case kindOutgoing:
		return "outgoing"
	case kindIncoming:
		return "incoming"
	default:
		return "bounce"
	}
}

// recipient is one accepted RCPT and what its message will be.
type recipient struct {
	kind   recipientKind
	rcptTo string
	// domain is the destination domain the queued row is filed under.
	domain       string
	serverID     int64
	credentialID int64
	routeID      int64
	domainID     int64
	bounceForID  int64
}

// resolveRecipient classifies addr, in Postal's order: return-path address,
// route token at the route domain, anything (once a credential is in use),
// route address, SMTP-IP credential, else relay refused. A client address
// matching an SMTP-IP credential puts that credential in use for the rest of
// the session, as in Postal. Before any of that, an address over the RFC
// 5321 lengths is refused (and never looked up), and the postmaster
// (RFC 5321 section 4.5.1) is accepted: see postmasterRecipient.
func (s *Server) resolveRecipient(ctx context.Context, sess *session, addr string) (recipient, error) {
	if err := checkPath(addr, errRcptPathTooLong, errRcptLocalTooLong, errRcptDomainTooLong); err != nil {
		return recipient{}, err
	}
	if strings.EqualFold(addr, "postmaster") {
		return s.postmasterRecipient(ctx)
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return recipient{}, errInvalidRcpt
	}
	local := addr[:at]
	domain := strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
	name, tag, _ := strings.Cut(local, "+")
	postmaster := strings.EqualFold(local, "postmaster")
	if postmaster && s.isOwnHost(domain) {
		return s.postmasterRecipient(ctx)
	}

	if s.isReturnPathDomain(domain) {
		return s.bounceRecipient(ctx, addr, domain, name, tag)
	}
	if rd := strings.ToLower(s.o.DNS.RouteDomain); rd != "" && domain == rd {
		route, found, err := s.lookups.routeByToken(ctx, strings.ToLower(name))
		if err != nil {
			return recipient{}, s.lookupFailed(err)
		}
		if !found {
			return recipient{}, errRouteToken
		}
		rcpt := route.Name
		if tag != "" {
			rcpt += "+" + tag
		}
		return s.routeRecipient(ctx, route, rcpt+"@"+route.Domain, strings.ToLower(route.Domain))
	}
	if cred := sess.credential(); cred != nil {
		return s.outgoingRecipient(ctx, cred, addr, domain)
	}
	route, found, err := s.lookups.routeForAddress(ctx, strings.ToLower(name), domain)
	if err != nil {
		return recipient{}, s.lookupFailed(err)
	}
	if found {
		return s.routeRecipient(ctx, route, addr, domain)
	}
	if postmaster {
		ours, err := s.lookups.isOurDomain(ctx, domain)
		if err != nil {
			return recipient{}, s.lookupFailed(err)
		}
		if ours {
			return s.postmasterRecipient(ctx)
		}
	}
	cred, found, err := s.lookups.smtpIPCredential(ctx, sess.tc.ip)
	if err != nil {
		return recipient{}, s.lookupFailed(err)
	}
	if !found {
		return recipient{}, errRelay
	}
	sess.useIPCredential(cred)
	if err := s.lookups.touch(ctx, cred); err != nil {
		s.log.Warn("recording credential use failed", "credential", cred.UUID, "err", err)
	}
	return s.outgoingRecipient(ctx, cred, addr, domain)
}

// isOwnHost reports whether domain names this installation itself: the SMTP
// host name, an MX host name customers point at, the route domain or the
// return-path domain.
func (s *Server) isOwnHost(domain string) bool {
	names := append([]string{s.o.Postal.SMTPHostname, s.o.DNS.RouteDomain, s.o.DNS.ReturnPathDomain}, s.o.DNS.MXRecords...)
	for _, n := range names {
		if n != "" && strings.EqualFold(strings.TrimSuffix(n, "."), domain) {
			return true
		}
	}
	return false
}

// postmasterRecipient resolves mail for the postmaster: <postmaster>,
// postmaster@ one of this installation's host names, or postmaster@ a
// verified domain of any server that has no route for it. It is delivered
// as incoming mail to the route that serves smtp_server.postmaster_address
// (stored and queued like any routed message, with that address as its
// recipient); without one it is refused with 550 5.1.1.
func (s *Server) postmasterRecipient(ctx context.Context) (recipient, error) {
	addr := s.o.Config.PostmasterAddress
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return recipient{}, errNoPostmaster
	}
	local, domain := addr[:at], strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
	route, found, err := s.lookups.routeForAddress(ctx, strings.ToLower(local), domain)
	if err != nil {
		return recipient{}, s.lookupFailed(err)
	}
	if !found {
		s.log.Error("smtp_server.postmaster_address has no route; postmaster mail refused", "address", addr)
		return recipient{}, errNoPostmaster
	}
	return s.routeRecipient(ctx, route, addr, domain)
}

func (s *Server) lookupFailed(err error) refusal {
	s.log.Error("recipient lookup failed", "err", err)
	return errTemporary
}

func (s *Server) isReturnPathDomain(domain string) bool {
	if rp := strings.ToLower(s.o.DNS.ReturnPathDomain); rp != "" && domain == rp {
		return true
	}
	p := strings.ToLower(s.o.DNS.CustomReturnPathPrefix)
	return p != "" && strings.HasPrefix(domain, p+".")
}

// bounceRecipient resolves a return-path address. Postal's form is
// <server token>@<return path domain>; a +<message token> tag names the
// message bounced. A message token alone as the local part is accepted too,
// so either convention of the sending side links the bounce.
func (s *Server) bounceRecipient(ctx context.Context, addr, domain, name, tag string) (recipient, error) {
	name = strings.ToLower(name)
	srv, found, err := s.lookups.serverByToken(ctx, name)
	if err != nil {
		return recipient{}, s.lookupFailed(err)
	}
	var bounceFor int64
	if found && tag != "" {
		m, err := s.o.Store.MessageByToken(ctx, strings.ToLower(tag))
		switch {
		case err == nil && m.ServerID == srv.ID:
			bounceFor = m.ID
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return recipient{}, s.lookupFailed(err)
		}
	}
	if !found {
		m, err := s.o.Store.MessageByToken(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return recipient{}, errServerToken
		}
		if err != nil {
			return recipient{}, s.lookupFailed(err)
		}
		if srv, found, err = s.lookups.server(ctx, m.ServerID); err != nil {
			return recipient{}, s.lookupFailed(err)
		}
		if !found {
			return recipient{}, errServerToken
		}
		bounceFor = m.ID
	}
	if srv.Suspended() {
		return recipient{}, errSuspended
	}
	// As in Postal, a server's __returnpath__ route (when it has one) is
	// the bounce's route: a bounce linked to nothing goes to its endpoint.
	rt, hasRoute, err := s.lookups.returnPathRoute(ctx, srv.ID)
	if err != nil {
		return recipient{}, s.lookupFailed(err)
	}
	r := recipient{kind: kindBounce, rcptTo: addr, domain: domain, serverID: srv.ID, bounceForID: bounceFor}
	if hasRoute {
		r.routeID = rt.ID
	}
	return r, nil
}

func (s *Server) routeRecipient(ctx context.Context, route *store.Route, rcptTo, domain string) (recipient, error) {
	srv, found, err := s.lookups.server(ctx, route.ServerID)
	if err != nil {
		return recipient{}, s.lookupFailed(err)
	}
	if !found {
		return recipient{}, errRelay
	}
	if srv.Suspended() {
		return recipient{}, errSuspended
	}
	if route.Mode == store.RouteModeReject {
		return recipient{}, errRouteRejects
	}
	return recipient{kind: kindIncoming, rcptTo: rcptTo, domain: domain, serverID: srv.ID, routeID: route.ID,
		domainID: route.DomainID}, nil
}

func (s *Server) outgoingRecipient(ctx context.Context, cred *store.Credential, rcptTo, domain string) (recipient, error) {
	srv, found, err := s.lookups.server(ctx, cred.ServerID)
	if err != nil {
		return recipient{}, s.lookupFailed(err)
	}
	if !found {
		return recipient{}, errRelay
	}
	if srv.Suspended() {
		return recipient{}, errSuspended
	}
	return recipient{kind: kindOutgoing, rcptTo: rcptTo, domain: domain, serverID: srv.ID, credentialID: cred.ID}, nil
}
