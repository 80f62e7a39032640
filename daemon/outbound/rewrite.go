package outbound

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/postalgo/postal/daemon/dkim"
	"github.com/postalgo/postal/daemon/mailheader"
	"github.com/postalgo/postal/daemon/store"
)

// msgIDHeader is the header that names the message token in what is sent.
const msgIDHeader = "X-Postal-MsgID"

// returnPath is the return path of a job: Postal's <server token>@<return
// path domain>, or "" (the null sender) for bounces. The envelope sender
// adds the message token as a +tag (envelopeFrom).
func (p *Processor) returnPath(j *job) string {
	if j.msg.Bounce {
		return ""
	}
	if d := j.domain; d != nil && d.ReturnPath.Status == "OK" && p.o.DNS.CustomReturnPathPrefix != "" {
		return j.server.Token + "@" + p.o.DNS.CustomReturnPathPrefix + "." + d.Name
	}
	return j.server.Token + "@" + p.returnPathDomain()
}

// returnPathDomain is dns.return_path_domain, or the SMTP host name when
// that is not configured.
func (p *Processor) returnPathDomain() string {
	switch {
	case p.o.DNS.ReturnPathDomain != "":
		return p.o.DNS.ReturnPathDomain
	case p.o.Postal.SMTPHostname != "":
		return p.o.Postal.SMTPHostname
	}
	return "localhost"
}

// bodyKey identifies prepared bytes that several messages may share: the
// same raw body, return path and signing domain give the same signed bytes.
type bodyKey struct {
	raw    int64
	msg    int64 // set only when a Tracker makes each message different
	from   string
	domain int64
}

type body struct {
	once sync.Once
	data []byte
	err  error
}

// bodies holds one batch's prepared bytes; each is prepared once, by the
// first goroutine that needs it. keys holds each job's key, decided once.
type bodies struct {
	m    map[bodyKey]*body
	keys map[*job]bodyKey
}

// trackChecker is a Tracker that can tell which messages it may rewrite,
// so the others share their signed bytes (daemon/tracker.Tracker).
type trackChecker interface {
	Tracks(ctx context.Context, msg *store.Message) bool
}

func (p *Processor) bodyKey(ctx context.Context, j *job) bodyKey {
	k := bodyKey{raw: j.msg.RawMessageID, from: p.returnPath(j), domain: j.msg.DomainID}
	tracked := p.o.Tracker != nil
	if tc, ok := p.o.Tracker.(trackChecker); ok {
		tracked = tc.Tracks(ctx, j.msg)
	}
	if tracked || k.raw == 0 {
		k.msg = j.msg.ID
	}
	return k
}

func (p *Processor) newBodies(ctx context.Context, jobs []*job) *bodies {
	b := &bodies{m: make(map[bodyKey]*body, len(jobs)), keys: make(map[*job]bodyKey, len(jobs))}
	for _, j := range jobs {
		k := p.bodyKey(ctx, j)
		b.keys[j] = k
		if b.m[k] == nil {
			b.m[k] = &body{}
		}
	}
	return b
}

// get returns the bytes to send for j (its own X-Postal-MsgID on top of the
// shared signed bytes) and its envelope sender (envelopeFrom).
func (b *bodies) get(ctx context.Context, p *Processor, j *job) ([]byte, string, error) {
	k := b.keys[j]
	e := b.m[k]
	e.once.Do(func() { e.data, e.err = p.prepare(ctx, j, k.from) })
	if e.err != nil {
		return nil, k.from, e.err
	}
	out := make([]byte, 0, len(msgIDHeader)+len(j.msg.Token)+4+len(e.data))
	out = append(out, msgIDHeader...)
	out = append(out, ": "...)
	out = append(out, j.msg.Token...)
	out = append(out, "\r\n"...)
	return append(out, e.data...), envelopeFrom(k.from, j.msg.Token), nil
}

// envelopeFrom is the MAIL FROM of a message whose return path is from:
// <server token>+<message token>@<domain>, so a bounce that quotes nothing
// of the message still names it (the smtp-server links a +tag on a
// return-path address to that message, and Postal's own parser strips the
// tag); the null sender stays null. The body (Resent-Sender) keeps the
// return path without the tag, so messages of one submission share their
// signed bytes.
func envelopeFrom(from, token string) string {
	at := strings.LastIndexByte(from, '@')
	if from == "" || token == "" || at <= 0 {
		return from
	}
	return from[:at] + "+" + token + from[at:]
}

// prepare rewrites and signs a job's raw message: refused with
// errHeaderTooLarge when its header block is over the limits (so the DKIM
// signer never sees one), earlier X-Postal-MsgID fields removed, tracking applied, Resent-Sender added, DKIM-Signature
// prepended.
func (p *Processor) prepare(ctx context.Context, j *job, from string) ([]byte, error) {
	h := mailheader.Parse(j.raw)
	if h.Check(p.headerLimits) != nil {
		return nil, fmt.Errorf("%w (%d bytes in %d lines)", errHeaderTooLarge, h.End(), h.Lines())
	}
	msg := h.Without(msgIDHeader)
	if p.o.Tracker != nil {
		t, err := p.o.Tracker.Track(ctx, j.msg, msg)
		if err != nil {
			return nil, fmt.Errorf("tracking: %w", err)
		}
		msg = t
	}
	if p.o.Postal.UseResentSenderHeader && from != "" {
		withHeader := make([]byte, 0, len(msg)+len(from)+17)
		withHeader = append(withHeader, "Resent-Sender: "...)
		withHeader = append(withHeader, from...)
		withHeader = append(withHeader, "\r\n"...)
		msg = append(withHeader, msg...)
	}
	signer, err := p.signers.get(j.domain, p.o.DNS.DKIMIdentifier)
	if err != nil {
		return nil, err
	}
	if signer == nil {
		return msg, nil
	}
	signed, err := signer.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	return signed, nil
}

// signerCache keeps one parsed DKIM signer per domain, replaced when the
// domain's key, selector or name changes. Parsing an RSA key (and checking it
// in libcrypto) costs far more than signing with it, so each entry is built
// once, outside the cache's lock: after a restart, the first messages of
// thousands of domains load their keys in parallel, not one at a time.
type signerCache struct {
	mu   sync.Mutex
	m    map[int64]*signerEntry
	keys KeyHolder // nil: sign with crypto/rsa
	log  *slog.Logger
}

type signerEntry struct {
	pem, selector, name string
	once                sync.Once
	signer              *dkim.Signer
	err                 error
}

// get returns the signer of d, nil when d is nil or has no key, or the error
// met parsing its key.
func (c *signerCache) get(d *store.Domain, identifier string) (*dkim.Signer, error) {
	if d == nil || d.DKIMPrivateKey == "" || d.DKIMIdentifierString == "" {
		return nil, nil
	}
	selector := identifier + "-" + d.DKIMIdentifierString
	c.mu.Lock()
	e := c.m[d.ID]
	if e == nil || e.pem != d.DKIMPrivateKey || e.selector != selector || e.name != d.Name {
		e = &signerEntry{pem: d.DKIMPrivateKey, selector: selector, name: d.Name}
		c.m[d.ID] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.signer, e.err = c.build(e) })
	return e.signer, e.err
}

// build parses e's key and makes its signer, through c.keys when it takes
// the key.
func (c *signerCache) build(e *signerEntry) (*dkim.Signer, error) {
	key, err := dkim.ParsePrivateKey([]byte(e.pem))
	if err != nil {
		return nil, fmt.Errorf("dkim key of domain %s: %w", e.name, err)
	}
	var cs crypto.Signer = key
	if c.keys != nil {
		if fast, err := c.keys.NewSigner(key); err == nil {
			cs = fast
		} else {
			// Same signatures, only slower: never fail mail for it.
			c.log.Warn("dkim key refused by libcrypto; signing with crypto/rsa", "domain", e.name, "err", err)
		}
	}
	signer, err := dkim.NewSigner(e.name, e.selector, cs)
	if err != nil {
		return nil, fmt.Errorf("dkim key of domain %s: %w", e.name, err)
	}
	return signer, nil
}

// headerSlack is the room left above the SMTP server's header limits for
// the fields it adds when it stores a message (Received, Message-ID,
// X-Postal-MsgID).
var headerSlack = mailheader.Limits{MaxBytes: 8 << 10, MaxLines: 16}

// errHeaderTooLarge refuses to sign or send a stored message whose header
// block is over the limits: it can only come from a bug or from a limit
// lowered since the message was accepted, and retrying cannot help.
var errHeaderTooLarge = errors.New("the message header is over the size limit; not signed or sent")

// headerEnd returns the offset of msg's body: after the empty line that
// ends the header block, or where the block ends without one (see
// mailheader), len(msg) when the message is all header.
func headerEnd(msg []byte) int { return mailheader.Parse(msg).BodyStart() }

// stripHeader returns msg without its header fields called name
// (case-insensitively), or msg itself when it has none.
func stripHeader(msg []byte, name string) []byte { return mailheader.Parse(msg).Without(name) }

// headerValues returns the unfolded values of msg's header fields called
// name (case-insensitively).
func headerValues(msg []byte, name string) []string { return mailheader.Parse(msg).Values(name) }
