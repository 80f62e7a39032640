package smtpclient

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"syscall"
)

// Stages of a delivery attempt, as reported in Error.Stage.
const (
	// StageDial covers waiting for a pooled connection and the TCP connect
	// (and the handshake of implicit TLS).
	StageDial = "dial"
	// StageGreeting is the server's 220 banner.
	StageGreeting = "greeting"
	// StageEHLO is EHLO, or HELO when EHLO was refused.
	StageEHLO = "ehlo"
	// StageStartTLS is the STARTTLS command and its handshake.
	StageStartTLS = "starttls"
	// StageMail is MAIL FROM, and local checks made before it (SIZE, SMTPUTF8,
	// address syntax).
	StageMail = "mail"
	// StageRcpt is RCPT TO; an Error at this stage means no recipient was
	// accepted.
	StageRcpt = "rcpt"
	// StageData is the DATA command, the body and the final reply.
	StageData = "data"
	// StageReset is the RSET that starts a transaction on a reused connection.
	StageReset = "reset"
)

// ErrClosed is wrapped by the Error that Send returns after Close.
var ErrClosed = errors.New("smtpclient: client closed")

// Error is a failed delivery attempt. Permanent is true only when the server
// answered with a 5xx reply (or a local check refused the message in the same
// way); every other failure is temporary and worth retrying.
type Error struct {
	// Stage is where the attempt failed: one of the Stage constants.
	Stage string
	// Code is the server's reply code (or the equivalent code of a local
	// refusal); 0 when no reply was involved.
	Code int
	// Enhanced is the RFC 3463 enhanced status code, e.g. "5.1.1", when known.
	Enhanced string
	// Message is the server's reply text (lines joined by "\n", made safe
	// and capped as MaxReplyText says) or a description of a local refusal.
	Message string
	// Permanent reports that retrying the same message cannot succeed.
	Permanent bool
	// Err is the underlying network, TLS or context error, if any.
	Err error
	// Rejected lists each recipient's refusal when Stage is StageRcpt.
	Rejected []RcptError
}

// Error returns "smtp <stage>: <code> <enhanced> <message>: <cause>", leaving
// out the parts that are empty.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("smtp ")
	b.WriteString(e.Stage)
	b.WriteString(":")
	if e.Code != 0 {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(e.Code))
	}
	if e.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(e.Enhanced)
	}
	if e.Message != "" {
		b.WriteByte(' ')
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		if e.Code != 0 || e.Message != "" {
			b.WriteByte(':')
		}
		b.WriteByte(' ')
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error, or nil.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether a later retry may succeed; it is !Permanent.
func (e *Error) Temporary() bool { return !e.Permanent }

// RcptError is one recipient refused by the server (or locally, with an
// equivalent code) while the message may still have gone to others.
type RcptError struct {
	// Rcpt is the refused address as given in Envelope.To.
	Rcpt string
	// Code is the RCPT reply code.
	Code int
	// Enhanced is the enhanced status code, when known.
	Enhanced string
	// Message is the reply text, made safe and capped as MaxReplyText says.
	Message string
	// Permanent is true for 5xx refusals.
	Permanent bool
}

// Error returns "rcpt <addr>: <code> <enhanced> <message>".
func (r RcptError) Error() string {
	var b strings.Builder
	b.WriteString("rcpt ")
	b.WriteString(r.Rcpt)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(r.Code))
	if r.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(r.Enhanced)
	}
	if r.Message != "" {
		b.WriteByte(' ')
		b.WriteString(r.Message)
	}
	return b.String()
}

// Temporary reports whether this recipient may be retried; it is !Permanent.
func (r RcptError) Temporary() bool { return !r.Permanent }

// replyError builds the Error for an unwanted reply at stage. Codes other than
// 5xx (including out-of-sequence 1xx-3xx codes) are temporary.
func replyError(stage string, rep *reply) *Error {
	return &Error{
		Stage:     stage,
		Code:      rep.code,
		Enhanced:  string(rep.enh),
		Message:   rep.message(),
		Permanent: rep.code >= 500 && rep.code < 600,
	}
}

// ioError builds the temporary Error for a network, TLS or protocol failure at
// stage. When ctx is done the context's cause is reported instead of the
// "use of closed connection" error its cancellation provoked.
func ioError(ctx context.Context, stage string, err error) *Error {
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return &Error{Stage: stage, Err: err}
}

// isConnGone reports whether err shows the peer closed or reset the
// connection (as opposed to a timeout or a local failure).
func isConnGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
