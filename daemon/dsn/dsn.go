// Package dsn builds and parses delivery status notifications (RFC 3464
// bounces, inside an RFC 6522 multipart/report).
//
// Contract: Build returns a complete RFC 5322 message with CRLF line endings
// whose bytes depend only on its Params (the MIME boundary is derived from
// the Message-ID), so the same Params always give the same bounce. Parse
// reads a DSN from any MTA and returns what bounce processing needs; it never
// panics on malformed input, takes time linear in the input's size (it looks
// at most 8 levels of multipart nesting deep and at most 100 entities), returns
// only valid UTF-8 text free of control characters and cut to bounded lengths,
// and returns ErrNotDSN when no delivery-status part is within those bounds
// and the text is none of the plain-text bounce formats it knows. Parse(Build(p)) returns the
// fields of p (addresses, actions, statuses, diagnostic codes, MTAs, dates to
// the second, original Message-ID).
package dsn

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/untrusted"
)

// Actions a per-recipient Action field may take (RFC 3464 section 2.3.3).
const (
	ActionFailed    = "failed"
	ActionDelayed   = "delayed"
	ActionDelivered = "delivered"
	ActionRelayed   = "relayed"
	ActionExpanded  = "expanded"
)

// Subjects of the notifications Build writes.
const (
	SubjectFailed  = "Mail delivery failed: returning message to sender"
	SubjectDelayed = "Mail delivery delayed: message not yet delivered"
	SubjectOther   = "Delivery status notification"
)

// dateLayout is the RFC 5322 date-time used for every date Build writes.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// maxLine is the longest header line Build aims for before folding.
const maxLine = 78

// Recipient is the report for one recipient.
type Recipient struct {
	// Address is the final recipient, e.g. "bob@example.org".
	Address string
	// Action is one of the Action constants: failed or delayed for bounces.
	Action string
	// Status is the enhanced status code, e.g. "5.1.1".
	Status string
	// DiagnosticCode is "<type>; <text>", e.g. "smtp; 550 5.1.1 no such user".
	// Build turns line breaks and runs of white space into single spaces and
	// bytes outside printable ASCII into '?'.
	DiagnosticCode string
	// RemoteMTA is the host name of the server that gave the diagnostic.
	RemoteMTA string
	// LastAttempt is when delivery was last tried; zero omits the field.
	LastAttempt time.Time
}

// Params describes a notification for Build.
type Params struct {
	ReportingMTA      string    // host name of this MTA, required
	From              string    // e.g. "Mail Delivery System <MAILER-DAEMON@host>", required
	To                string    // the original envelope sender, required
	Arrival           time.Time // when the original message arrived; zero omits it
	Date              time.Time // Date of the notification, required
	MessageID         string    // Message-ID of the notification, with or without <>, required
	Recipients        []Recipient
	OriginalHeaders   []byte // header block of the original message; empty omits part 3
	OriginalMessageID string // Message-ID of the original, with or without <>; optional
	HumanText         string // replaces the generated explanation when not empty
}

// Report is what Parse found in a notification.
type Report struct {
	// Format is FormatRFC3464 for a delivery-status report, else the
	// plain-text bounce format it was read as (FormatQmail, ...).
	Format            string
	ReportType        string    // report-type of the multipart/report, e.g. "delivery-status"
	ReportingMTA      string    // without its "dns;" type
	Arrival           time.Time // zero when absent or unparsable
	Recipients        []Recipient
	OriginalMessageID string // Message-ID of the returned message, without <>
	PostalMessageID   string // X-Postal-MsgID of the returned message, if any
	OriginalHeaders   []byte // returned header block, as found
}

// ErrNotDSN reports that a message holds no delivery-status part.
var ErrNotDSN = errors.New("dsn: not a delivery status notification")

var statusRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// Build returns the notification described by p. It fails, naming the field,
// when a required field is empty, a field would break the header (line
// breaks or control characters), an Action or Status is malformed, or there
// is no recipient.
func Build(p Params) ([]byte, error) {
	if err := validate(p); err != nil {
		return nil, err
	}
	msgID := strings.Trim(p.MessageID, "<>")
	origID := strings.Trim(p.OriginalMessageID, "<>")
	human := humanText(p, origID)
	status := deliveryStatus(p)
	headers := originalHeaders(p.OriginalHeaders)

	boundary := makeBoundary(msgID, human, status, string(headers))

	var b bytes.Buffer
	b.Grow(2048 + len(headers))
	writeField(&b, "From", p.From)
	writeField(&b, "To", p.To)
	writeField(&b, "Subject", subject(p.Recipients))
	writeField(&b, "Date", p.Date.Format(dateLayout))
	writeField(&b, "Message-ID", "<"+msgID+">")
	if origID != "" {
		writeField(&b, "In-Reply-To", "<"+origID+">")
		writeField(&b, "References", "<"+origID+">")
	}
	writeField(&b, "MIME-Version", "1.0")
	writeField(&b, "Auto-Submitted", "auto-replied")
	writeField(&b, "Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	b.WriteString("\r\nThis is a MIME-formatted delivery status notification.\r\n")

	b.WriteString("\r\n--" + boundary + "\r\n")
	writeField(&b, "Content-Description", "Notification")
	if needsQP(human) {
		writeField(&b, "Content-Type", "text/plain; charset=utf-8")
		writeField(&b, "Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		qp := quotedprintable.NewWriter(&b)
		_, _ = qp.Write([]byte(human)) // writes to a bytes.Buffer cannot fail
		_ = qp.Close()
		if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
			b.WriteString("\r\n")
		}
	} else {
		writeField(&b, "Content-Type", "text/plain; charset=us-ascii")
		writeField(&b, "Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n")
		b.WriteString(human)
	}

	b.WriteString("\r\n--" + boundary + "\r\n")
	writeField(&b, "Content-Description", "Delivery report")
	writeField(&b, "Content-Type", "message/delivery-status")
	b.WriteString("\r\n")
	b.WriteString(status)

	if len(headers) > 0 {
		b.WriteString("\r\n--" + boundary + "\r\n")
		writeField(&b, "Content-Description", "Undelivered message headers")
		writeField(&b, "Content-Type", "text/rfc822-headers")
		if untrusted.IsASCII(string(headers)) {
			writeField(&b, "Content-Transfer-Encoding", "7bit")
		} else {
			writeField(&b, "Content-Transfer-Encoding", "8bit")
		}
		b.WriteString("\r\n")
		b.Write(headers)
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

func validate(p Params) error {
	required := []struct{ name, value string }{
		{"ReportingMTA", p.ReportingMTA}, {"From", p.From}, {"To", p.To}, {"MessageID", strings.Trim(p.MessageID, "<>")},
	}
	for _, f := range required {
		if strings.TrimSpace(f.value) == "" {
			return fmt.Errorf("dsn: %s is required", f.name)
		}
	}
	if p.Date.IsZero() {
		return errors.New("dsn: Date is required")
	}
	if len(p.Recipients) == 0 {
		return errors.New("dsn: at least one recipient is required")
	}
	fields := []struct{ name, value string }{
		{"ReportingMTA", p.ReportingMTA}, {"From", p.From}, {"To", p.To},
		{"MessageID", p.MessageID}, {"OriginalMessageID", p.OriginalMessageID},
	}
	for _, f := range fields {
		if err := checkField(f.name, f.value); err != nil {
			return err
		}
	}
	if !untrusted.IsASCII(p.ReportingMTA) || strings.ContainsAny(p.ReportingMTA, " \t;") {
		return fmt.Errorf("dsn: ReportingMTA %q is not a host name", p.ReportingMTA)
	}
	for i, r := range p.Recipients {
		if strings.TrimSpace(r.Address) == "" {
			return fmt.Errorf("dsn: Recipients[%d].Address is required", i)
		}
		for _, f := range []struct{ name, value string }{{"Address", r.Address}, {"RemoteMTA", r.RemoteMTA}} {
			if err := checkField(fmt.Sprintf("Recipients[%d].%s", i, f.name), f.value); err != nil {
				return err
			}
		}
		if r.RemoteMTA != "" && (!untrusted.IsASCII(r.RemoteMTA) || strings.ContainsAny(r.RemoteMTA, " \t;")) {
			return fmt.Errorf("dsn: Recipients[%d].RemoteMTA %q is not a host name", i, r.RemoteMTA)
		}
		switch r.Action {
		case ActionFailed, ActionDelayed, ActionDelivered, ActionRelayed, ActionExpanded:
		default:
			return fmt.Errorf("dsn: Recipients[%d].Action %q is not one of failed, delayed, delivered, relayed, expanded", i, r.Action)
		}
		if !statusRE.MatchString(r.Status) {
			return fmt.Errorf("dsn: Recipients[%d].Status %q is not an enhanced status code like 5.1.1", i, r.Status)
		}
	}
	return nil
}

// checkField refuses values that would break out of a header line.
func checkField(name, value string) error {
	if !utf8.ValidString(value) {
		return fmt.Errorf("dsn: %s is not valid UTF-8", name)
	}
	for _, c := range value {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("dsn: %s contains a control character", name)
		}
	}
	return nil
}

func subject(rs []Recipient) string {
	delayed := 0
	for _, r := range rs {
		switch r.Action {
		case ActionFailed:
			return SubjectFailed
		case ActionDelayed:
			delayed++
		}
	}
	if delayed > 0 {
		return SubjectDelayed
	}
	return SubjectOther
}

// humanText returns part 1 with CRLF line endings.
func humanText(p Params, origID string) string {
	if p.HumanText != "" {
		return toCRLF(p.HumanText)
	}
	var failed, delayed, other []Recipient
	for _, r := range p.Recipients {
		switch r.Action {
		case ActionFailed:
			failed = append(failed, r)
		case ActionDelayed:
			delayed = append(delayed, r)
		default:
			other = append(other, r)
		}
	}
	var b strings.Builder
	b.WriteString("This is the mail system at " + p.ReportingMTA + ".\r\n")
	section := func(intro string, rs []Recipient) {
		if len(rs) == 0 {
			return
		}
		b.WriteString("\r\n" + intro + "\r\n\r\n")
		for _, r := range rs {
			b.WriteString("  <" + r.Address + ">\r\n")
			diag := diagnosticText(r.DiagnosticCode)
			if diag == "" {
				diag = "no further details"
			}
			b.WriteString("    " + diag + " (status " + r.Status + ")\r\n")
		}
	}
	section("Your message could not be delivered to the following recipients.\r\n"+
		"This is a permanent error; the message will not be retried.", failed)
	section("Your message has not yet been delivered to the following recipients.\r\n"+
		"Delivery is still being attempted; you do not need to send it again.", delayed)
	section("Delivery status of your message for the following recipients:", other)
	if origID != "" {
		b.WriteString("\r\nYour message's ID was <" + origID + ">.\r\n")
	}
	if len(p.OriginalHeaders) > 0 {
		b.WriteString("The headers of your message are attached.\r\n")
	}
	return b.String()
}

// diagnosticText drops the "smtp;" type from a diagnostic code for people.
func diagnosticText(code string) string {
	code = cleanDiagnostic(code)
	if i := strings.IndexByte(code, ';'); i >= 0 && !strings.ContainsAny(code[:i], " \t") {
		return strings.TrimSpace(code[i+1:])
	}
	return code
}

// deliveryStatus returns part 2: the per-message fields, then one block per
// recipient, each block ended by an empty line.
func deliveryStatus(p Params) string {
	var b bytes.Buffer
	writeField(&b, "Reporting-MTA", "dns; "+p.ReportingMTA)
	if !p.Arrival.IsZero() {
		writeField(&b, "Arrival-Date", p.Arrival.Format(dateLayout))
	}
	for _, r := range p.Recipients {
		b.WriteString("\r\n")
		writeField(&b, "Final-Recipient", addressField(r.Address))
		writeField(&b, "Action", r.Action)
		writeField(&b, "Status", r.Status)
		if r.RemoteMTA != "" {
			writeField(&b, "Remote-MTA", "dns; "+r.RemoteMTA)
		}
		if d := cleanDiagnostic(r.DiagnosticCode); d != "" {
			writeField(&b, "Diagnostic-Code", d)
		}
		if !r.LastAttempt.IsZero() {
			writeField(&b, "Last-Attempt-Date", r.LastAttempt.Format(dateLayout))
		}
	}
	return b.String()
}

// addressField types an address: rfc822 when ASCII, otherwise utf-8 with
// RFC 6533 utf-8-addr-xtext escapes so the part stays 7-bit.
func addressField(addr string) string {
	if untrusted.IsASCII(addr) && !strings.ContainsAny(addr, `\`) {
		return "rfc822; " + addr
	}
	var b strings.Builder
	b.WriteString("utf-8; ")
	for _, c := range addr {
		if c < 0x21 || c > 0x7e || c == '\\' || c == '+' || c == '=' {
			fmt.Fprintf(&b, `\x{%X}`, c)
		} else {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// cleanDiagnostic makes a diagnostic code one printable-ASCII line with
// single spaces.
func cleanDiagnostic(s string) string {
	var b strings.Builder
	for _, f := range strings.Fields(s) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		for i := 0; i < len(f); i++ {
			if c := f[i]; c > 0x20 && c < 0x7f {
				b.WriteByte(c)
			} else {
				b.WriteByte('?')
			}
		}
	}
	return b.String()
}

// originalHeaders returns the header block of h with CRLF line endings and no
// trailing empty line; h may be a whole message.
func originalHeaders(h []byte) []byte {
	if len(bytes.TrimSpace(h)) == 0 {
		return nil
	}
	s := toCRLF(string(h))
	if i := strings.Index(s, "\r\n\r\n"); i >= 0 {
		s = s[:i+2]
	}
	s = strings.TrimLeft(s, "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return []byte(s)
}

// makeBoundary derives the boundary from the Message-ID, changing it in the
// unlikely case that a part's content contains it.
func makeBoundary(msgID string, parts ...string) string {
	for n := 0; ; n++ {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", msgID, n))
		boundary := "=_dsn_" + hex.EncodeToString(sum[:12])
		clash := false
		for _, p := range parts {
			if strings.Contains(p, boundary) {
				clash = true
				break
			}
		}
		if !clash {
			return boundary
		}
	}
}

// writeField writes "Name: value" folded at spaces to about maxLine columns.
func writeField(b *bytes.Buffer, name, value string) {
	line := name + ":"
	width := len(line)
	words := strings.Split(value, " ")
	for i, w := range words {
		if i > 0 && width+1+len(w) > maxLine && width > len(name)+1 {
			b.WriteString(line + "\r\n")
			line, width = "", 0
		}
		line += " " + w
		width += 1 + len(w)
	}
	b.WriteString(line + "\r\n")
}

func needsQP(s string) bool {
	if !untrusted.IsASCII(s) {
		return true
	}
	for _, l := range strings.Split(s, "\r\n") {
		if len(l) > 998 {
			return true
		}
	}
	return false
}

// toCRLF returns s with every line ending as CRLF, ending with one.
func toCRLF(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}
