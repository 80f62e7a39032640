package smtpclient

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/postalgo/postal/daemon/untrusted"
)

// Envelope is the SMTP envelope of one message.
type Envelope struct {
	// From is the reverse path; empty is the null sender "<>" of bounces.
	From string
	// To lists the recipients; at least one is required.
	To []string
}

// Result describes a delivery attempt. On success Code, Enhanced and Message
// are the server's final reply to the data; on failure only the connection
// facts (TLS, RemoteAddr, Reused, Duration) are meaningful.
type Result struct {
	// Code, Enhanced and Message are the server's reply to the message data;
	// Message is made safe and capped as MaxReplyText says.
	Code     int
	Enhanced string
	Message  string
	// TLS reports that the session ran over TLS (STARTTLS or implicit).
	TLS bool
	// TLSVersion and TLSCipher name the negotiated TLS parameters.
	TLSVersion, TLSCipher string
	// RemoteAddr is the server's address (ip:port).
	RemoteAddr string
	// Accepted lists the recipients the server took. When none was refused
	// it shares Envelope.To's backing array (with its capacity clipped).
	Accepted []string
	// Rejected lists the recipients refused while others were accepted.
	Rejected []RcptError
	// Duration is the whole Send, waiting for a connection included.
	Duration time.Duration
	// Reused reports that the message went over a pooled connection.
	Reused bool
}

// Send delivers data from env.From to env.To at d, over a pooled connection
// when one is idle, and returns a non-nil Result. When the server accepted the
// message for at least one recipient the error is nil (refused recipients are
// in Result.Rejected); otherwise it is a *Error saying where the attempt failed
// and whether it is permanent. ctx bounds the whole call, waiting for a
// connection included; when it ends the session is aborted by closing its
// connection and the Error wraps the context's cause.
func (c *Client) Send(ctx context.Context, d Destination, env Envelope, data []byte) (*Result, error) {
	start := c.o.Now()
	res := &Result{}
	e := c.send(ctx, d, env, data, res)
	res.Duration = c.o.Now().Sub(start)
	switch {
	case e == nil:
		c.m.sent.Inc()
		return res, nil
	case e.Permanent:
		c.m.hardFail.Inc()
	default:
		c.m.softFail.Inc()
	}
	return res, e
}

func (c *Client) send(ctx context.Context, d Destination, env Envelope, data []byte, res *Result) *Error {
	if e := checkEnvelope(env); e != nil {
		return e
	}
	hp, err := c.pool(d.Key())
	if err != nil {
		return &Error{Stage: StageDial, Err: err}
	}
	defer c.unref(hp)
	if err := acquire(ctx, hp); err != nil {
		return &Error{Stage: StageDial, Err: fmt.Errorf("waiting for a connection: %w", err)}
	}
	defer func() { <-hp.sem }()

	for {
		cn, err := c.take(hp)
		if err != nil {
			return &Error{Stage: StageDial, Err: err}
		}
		reused := cn != nil
		if !reused {
			var e *Error
			if cn, e = c.dial(ctx, d); e != nil {
				c.cancelDial(hp)
				return e
			}
		}
		stop := watch(ctx, cn)
		var e *Error
		if !reused {
			e = cn.handshake(ctx, d, c.o.HeloHostname, c.o.OpenTimeout, c.o.TLSConfig)
			if e != nil {
				cn.broken = true
			} else {
				c.m.opened.Inc()
				c.log.Debug("connection opened", "remote", cn.remote, "tls", cn.tls, "key", hp.key)
			}
		} else {
			c.m.reused.Inc()
		}
		res.Reused, res.RemoteAddr, res.TLS, res.TLSVersion, res.TLSCipher =
			reused, cn.remote, cn.tls, cn.tlsVersion, cn.tlsCipher
		stale := false
		if e == nil {
			e, stale = cn.transact(ctx, reused, env, data, res)
		}
		if !stop() {
			// ctx ended and the watcher closed (or is closing) the socket;
			// an I/O failure it caused already reports the context's cause.
			cn.broken = true
		}
		c.release(hp, cn)
		// Each stale connection is discarded, so this ends at the latest
		// with a freshly dialled one, which is never stale.
		if e != nil && stale && ctx.Err() == nil {
			c.log.Debug("pooled connection was closed by the server; redialling", "remote", cn.remote, "err", e)
			continue
		}
		return e
	}
}

// watch arranges for cn's socket to be closed when ctx ends, which aborts any
// blocked read, write or handshake at once. The returned stop reports false
// when that has happened (or is under way).
func watch(ctx context.Context, cn *conn) (stop func() bool) {
	if ctx.Done() == nil {
		return func() bool { return true }
	}
	return context.AfterFunc(ctx, func() { _ = cn.raw.Close() })
}

// dial opens the TCP connection to d within OpenTimeout.
func (c *Client) dial(ctx context.Context, d Destination) (*conn, *Error) {
	dctx, cancel := context.WithTimeout(ctx, c.o.OpenTimeout)
	defer cancel()
	addr := dialAddress(d)
	var (
		raw net.Conn
		err error
	)
	if c.o.Dialer != nil {
		raw, err = c.o.Dialer(dctx, "tcp", addr)
	} else {
		var nd net.Dialer
		if d.LocalAddr != nil {
			nd.LocalAddr = &net.TCPAddr{IP: d.LocalAddr}
		}
		raw, err = nd.DialContext(dctx, "tcp", addr)
	}
	if err != nil {
		return nil, ioError(ctx, StageDial, fmt.Errorf("dial %s: %w", addr, err))
	}
	return newConn(raw, c.o.ReadTimeout, c.o.Now), nil
}

// checkEnvelope refuses, before any I/O, envelopes that cannot be sent.
func checkEnvelope(env Envelope) *Error {
	if !validAddress(env.From) {
		return &Error{Stage: StageMail, Code: 553, Enhanced: "5.1.7", Permanent: true,
			Message: "sender address contains characters SMTP cannot carry"}
	}
	if len(env.To) == 0 {
		return &Error{Stage: StageRcpt, Code: 554, Enhanced: "5.5.1", Permanent: true,
			Message: "no recipients"}
	}
	return nil
}

// localRefusal says why rcpt cannot be sent over cn without asking the
// server, or returns ok.
func (cn *conn) localRefusal(rcpt string) (RcptError, bool) {
	switch {
	case !validAddress(rcpt):
		return RcptError{Rcpt: rcpt, Code: 553, Enhanced: "5.1.3", Permanent: true,
			Message: "recipient address contains characters SMTP cannot carry"}, false
	case !cn.ext.smtpUTF8 && !untrusted.IsASCII(rcpt):
		return RcptError{Rcpt: rcpt, Code: 553, Enhanced: "5.6.7", Permanent: true,
			Message: "non-ASCII recipient address and the server does not offer SMTPUTF8"}, false
	}
	return RcptError{}, true
}

// rcptTally collects RCPT outcomes, allocating only when one is refused.
type rcptTally struct {
	to       []string
	accepted []string
	rejected []RcptError
	nOK      int
	// nTemp counts temporary refusals.
	nTemp int
}

func (t *rcptTally) ok(i int) {
	if t.rejected != nil {
		t.accepted = append(t.accepted, t.to[i])
	}
	t.nOK++
}

func (t *rcptTally) refuse(i int, r RcptError) {
	if t.rejected == nil {
		t.accepted = make([]string, 0, len(t.to)-1)
		t.accepted = append(t.accepted, t.to[:i]...)
	}
	t.rejected = append(t.rejected, r)
	if !r.Permanent {
		t.nTemp++
	}
}

func (t *rcptTally) fromReply(i int, rep *reply) {
	if rep.code/100 == 2 {
		t.ok(i)
		return
	}
	t.refuse(i, RcptError{Rcpt: t.to[i], Code: rep.code, Enhanced: string(rep.enh),
		Message: rep.message(), Permanent: rep.code >= 500})
}

// result fills res with the accepted and refused recipients.
func (t *rcptTally) result(res *Result) {
	if t.rejected == nil {
		res.Accepted = t.to[:len(t.to):len(t.to)]
		return
	}
	res.Accepted, res.Rejected = t.accepted, t.rejected
}

// noneAccepted is the rcpt-stage Error when every recipient was refused:
// permanent only when every refusal was, with the first refusal's reply.
func (t *rcptTally) noneAccepted() *Error {
	first := t.rejected[0]
	if t.nTemp > 0 {
		for _, r := range t.rejected {
			if !r.Permanent {
				first = r
				break
			}
		}
	}
	return &Error{Stage: StageRcpt, Code: first.Code, Enhanced: first.Enhanced,
		Message: first.Message, Permanent: t.nTemp == 0, Rejected: t.rejected}
}

// transact runs one mail transaction. stale reports a reused connection that
// turned out to be closed before the server answered anything, so the caller
// may retry on a fresh one.
func (cn *conn) transact(ctx context.Context, reused bool, env Envelope, data []byte, res *Result) (e *Error, stale bool) {
	if cn.ext.size > 0 && int64(len(data)) > cn.ext.size {
		return &Error{Stage: StageMail, Code: 552, Enhanced: "5.3.4", Permanent: true,
			Message: fmt.Sprintf("message of %d bytes exceeds the server's SIZE limit of %d", len(data), cn.ext.size)}, false
	}
	utf8 := !untrusted.IsASCII(env.From)
	if utf8 && !cn.ext.smtpUTF8 {
		return &Error{Stage: StageMail, Code: 553, Enhanced: "5.6.7", Permanent: true,
			Message: "non-ASCII sender address and the server does not offer SMTPUTF8"}, false
	}
	t := rcptTally{to: env.To}
	nLocal := 0
	for _, r := range env.To {
		if !untrusted.IsASCII(r) {
			utf8 = true
		}
		if _, ok := cn.localRefusal(r); !ok {
			nLocal++
		}
	}
	if nLocal == len(env.To) {
		for i, r := range env.To {
			ref, _ := cn.localRefusal(r)
			t.refuse(i, ref)
		}
		return t.noneAccepted(), false
	}
	eight := has8bit(data)
	cn.sent++
	gotReply := false
	// fail turns an I/O error into an Error, noting whether the connection
	// was a stale pooled one.
	fail := func(stage string, err error) (*Error, bool) {
		return ioError(ctx, stage, err), reused && !gotReply && isConnGone(err)
	}
	pipe := cn.ext.pipelining

	if reused {
		cn.cmd("RSET")
		if !pipe {
			if err := cn.flush(); err != nil {
				return fail(StageReset, err)
			}
		}
	}
	if reused && !pipe {
		if err := cn.read(); err != nil {
			return fail(StageReset, err)
		}
		gotReply = true
		if cn.rep.code != 250 {
			cn.broken = true
			return replyError(StageReset, &cn.rep), reused && cn.rep.code == 421
		}
	}

	cn.writeMail(env.From, len(data), eight && cn.ext.eightBit, utf8 && cn.ext.smtpUTF8)
	if !pipe {
		if err := cn.flush(); err != nil {
			return fail(StageMail, err)
		}
		if err := cn.read(); err != nil {
			return fail(StageMail, err)
		}
		gotReply = true
		if cn.rep.code/100 != 2 {
			return replyError(StageMail, &cn.rep), false
		}
		for i, r := range env.To {
			if ref, ok := cn.localRefusal(r); !ok {
				t.refuse(i, ref)
				continue
			}
			cn.writeRcpt(r)
			if err := cn.flush(); err != nil {
				return fail(StageRcpt, err)
			}
			if err := cn.read(); err != nil {
				return fail(StageRcpt, err)
			}
			t.fromReply(i, &cn.rep)
			if cn.broken {
				return replyError(StageRcpt, &cn.rep), false
			}
		}
		if t.nOK == 0 {
			return t.noneAccepted(), false
		}
		if err := cn.roundTrip("DATA"); err != nil {
			return fail(StageData, err)
		}
		if cn.rep.code != 354 {
			return replyError(StageData, &cn.rep), false
		}
	} else {
		for _, r := range env.To {
			if _, ok := cn.localRefusal(r); ok {
				cn.writeRcpt(r)
			}
		}
		cn.cmd("DATA")
		if err := cn.flush(); err != nil {
			if reused {
				return fail(StageReset, err)
			}
			return fail(StageMail, err)
		}
		if reused {
			if err := cn.read(); err != nil {
				return fail(StageReset, err)
			}
			gotReply = true
			if cn.rep.code != 250 {
				cn.broken = true // the pipelined replies are not worth decoding
				return replyError(StageReset, &cn.rep), cn.rep.code == 421
			}
		}
		if err := cn.read(); err != nil {
			return fail(StageMail, err)
		}
		gotReply = true
		var mailErr *Error
		if cn.rep.code/100 != 2 {
			mailErr = replyError(StageMail, &cn.rep)
			if cn.broken {
				return mailErr, false
			}
		}
		for i, r := range env.To {
			if ref, ok := cn.localRefusal(r); !ok {
				t.refuse(i, ref)
				continue
			}
			if err := cn.read(); err != nil {
				return fail(StageRcpt, err)
			}
			t.fromReply(i, &cn.rep)
			if cn.broken {
				return replyError(StageRcpt, &cn.rep), false
			}
		}
		if err := cn.read(); err != nil {
			return fail(StageData, err)
		}
		var envErr *Error
		switch {
		case mailErr != nil:
			envErr = mailErr
		case t.nOK == 0:
			envErr = t.noneAccepted()
		case cn.rep.code != 354:
			envErr = replyError(StageData, &cn.rep)
		}
		if envErr != nil {
			if cn.rep.code == 354 {
				// The server wants data for a transaction it cannot have
				// accepted: end it empty and stop using the connection.
				cn.cmd(".")
				if cn.flush() == nil {
					_ = cn.read()
				}
				cn.broken = true
			}
			return envErr, false
		}
	}

	writeData(cn.bw, data)
	if err := cn.flush(); err != nil {
		return fail(StageData, err)
	}
	if err := cn.read(); err != nil {
		return fail(StageData, err)
	}
	if cn.rep.code/100 != 2 {
		return replyError(StageData, &cn.rep), false
	}
	res.Code = cn.rep.code
	res.Enhanced = string(cn.rep.enh)
	res.Message = cn.rep.message()
	t.result(res)
	return nil, false
}

// writeMail buffers MAIL FROM with the parameters the server understands.
func (cn *conn) writeMail(from string, size int, eightBit, utf8 bool) {
	w := cn.bw
	_, _ = w.WriteString("MAIL FROM:<")
	_, _ = w.WriteString(from)
	_ = w.WriteByte('>')
	if cn.ext.size > 0 || cn.ext.sizeKeyword {
		_, _ = w.WriteString(" SIZE=")
		cn.scratch = strconv.AppendInt(cn.scratch[:0], int64(size), 10)
		_, _ = w.Write(cn.scratch)
	}
	if eightBit {
		_, _ = w.WriteString(" BODY=8BITMIME")
	}
	if utf8 {
		_, _ = w.WriteString(" SMTPUTF8")
	}
	_, _ = w.WriteString("\r\n")
}

// writeRcpt buffers RCPT TO.
func (cn *conn) writeRcpt(to string) {
	_, _ = cn.bw.WriteString("RCPT TO:<")
	_, _ = cn.bw.WriteString(to)
	_, _ = cn.bw.WriteString(">\r\n")
}
