package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/postalgo/postal/daemon/untrusted"
)

// Bounds on the work and the text Parse takes from a notification, which is
// foreign input.
const (
	// maxPartBytes bounds how much of one part Parse reads.
	maxPartBytes = 1 << 20
	// maxDepth is the deepest multipart nesting Parse descends into (the
	// top-level entity is depth 0). Every level of nesting wraps the part
	// readers below it in one more reader, so reading a byte costs one step
	// per level: the cap keeps a walk linear in the size of the message.
	// Real notifications nest two or three levels.
	maxDepth = 8
	// maxParts is the most MIME entities Parse looks at.
	maxParts = 100

	// Caps on the fields of a Report, in bytes (see package untrusted).
	maxAddress    = 512
	maxDiagnostic = 2048
	maxHost       = 255
	maxMessageID  = 998
	maxWord       = 64
)

// errWalkDone stops a walk that has found everything it looks for, or has
// looked at maxParts entities.
var errWalkDone = errors.New("dsn: walk done")

// Parse reads a received notification. It walks the MIME tree depth first,
// down to maxDepth levels of multipart nesting and across at most maxParts
// entities, and takes the first message/delivery-status (or
// message/global-delivery-status) part and the first returned header block
// (text/rfc822-headers, message/rfc822 and their global forms); it stops as
// soon as it has both. Its time is linear in the size of raw, however deep
// the nesting. Every text field of the Report is valid UTF-8 without control
// characters, cut to a bounded length (see package untrusted);
// OriginalHeaders is kept as found. It returns ErrNotDSN when there is no
// delivery-status part within those bounds, and a wrapped parse error when
// the MIME structure or the status fields are malformed.
//
// A bounce without a delivery-status part is read from its first
// text/plain entity (at most 64 KiB) when it is one of the common
// non-standard formats (qmail, Exim, Postfix without a report, Exchange,
// Gmail, Yahoo; see Report.Format): the failed recipients (at most 100),
// each with the text that follows it as its diagnostic and the first
// enhanced status found there, and the original's IDs from an attached
// message/rfc822 or the copy after the report. Otherwise it is ErrNotDSN.
func Parse(raw []byte) (*Report, error) {
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !lenient(err) {
		return nil, fmt.Errorf("dsn: parse: %w", err)
	}
	w := &walker{rep: &Report{}}
	if err := w.walk(e, 0); err != nil && !errors.Is(err, errWalkDone) {
		return nil, fmt.Errorf("dsn: parse: %w", err)
	}
	rep := w.rep
	switch {
	case w.found:
		rep.Format = FormatRFC3464
	case w.text == nil || !parseText(w.text, rep):
		return nil, ErrNotDSN
	}
	if rep.OriginalMessageID == "" {
		rep.OriginalMessageID = messageID(e.Header.Get("In-Reply-To"))
	}
	return rep, nil
}

// walker is one bounded depth-first walk over a notification's entities.
type walker struct {
	rep     *Report
	found   bool // a delivery-status part was read
	headers bool // a non-empty returned header block was read
	parts   int
	// text is the first text/plain entity (at most maxTextBytes), read
	// as a plain-text bounce when there is no delivery-status part.
	text []byte
}

// walk visits e at depth and then, when e is a multipart within maxDepth,
// its parts. It returns errWalkDone to end the whole walk early.
func (w *walker) walk(e *message.Entity, depth int) error {
	w.parts++
	if err := w.visit(e); err != nil {
		return err
	}
	if w.found && w.headers {
		return errWalkDone
	}
	if depth >= maxDepth {
		return nil // deeper parts are skipped by the parent's reader
	}
	mr := e.MultipartReader()
	if mr == nil {
		return nil
	}
	for {
		if w.parts >= maxParts {
			return errWalkDone
		}
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && !lenient(err) {
			return err
		}
		if err := w.walk(part, depth+1); err != nil {
			return err
		}
	}
}

// visit reads what Parse needs from one entity.
func (w *walker) visit(part *message.Entity) error {
	rep := w.rep
	mt, params, _ := part.Header.ContentType()
	switch strings.ToLower(mt) {
	case "multipart/report":
		if rep.ReportType == "" {
			rep.ReportType = untrusted.Text(strings.ToLower(params["report-type"]), maxWord)
		}
	case "message/delivery-status", "message/global-delivery-status":
		if w.found {
			return nil
		}
		w.found = true
		body, err := io.ReadAll(io.LimitReader(part.Body, maxPartBytes))
		if err != nil {
			return fmt.Errorf("delivery-status part: %w", err)
		}
		if err := parseStatus(body, rep); err != nil {
			return fmt.Errorf("delivery-status part: %w", err)
		}
	case "text/plain", "":
		if w.text != nil || w.found {
			return nil
		}
		body, err := io.ReadAll(io.LimitReader(part.Body, maxTextBytes))
		if err != nil {
			return fmt.Errorf("text part: %w", err)
		}
		w.text = body
	case "text/rfc822-headers", "message/rfc822-headers", "message/global-headers",
		"message/rfc822", "message/global":
		if w.headers {
			return nil
		}
		if err := parseReturned(part.Body, rep); err != nil {
			return fmt.Errorf("returned headers: %w", err)
		}
		// An empty block leaves the place to a later one.
		w.headers = rep.OriginalHeaders != nil
	}
	return nil
}

// lenient reports errors go-message returns alongside a usable entity.
func lenient(err error) bool {
	return message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)
}

// parseStatus reads the blocks of a delivery-status body: the per-message
// block, then one block per recipient. A block naming a recipient is a
// recipient block wherever it appears.
func parseStatus(body []byte, rep *Report) error {
	br := bufio.NewReader(bytes.NewReader(body))
	for {
		if err := skipBlankLines(br); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		h, err := textproto.ReadHeader(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if h.Has("Final-Recipient") || h.Has("Original-Recipient") {
			rep.Recipients = append(rep.Recipients, recipient(h))
		} else {
			if v := h.Get("Reporting-MTA"); v != "" && rep.ReportingMTA == "" {
				rep.ReportingMTA = untrusted.Text(untype(v), maxHost)
			}
			if v := h.Get("Arrival-Date"); v != "" && rep.Arrival.IsZero() {
				rep.Arrival = parseDate(v)
			}
		}
		if err != nil {
			return nil
		}
	}
}

func skipBlankLines(br *bufio.Reader) error {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return err
		}
		if b[0] != '\r' && b[0] != '\n' {
			return nil
		}
		if _, err := br.ReadByte(); err != nil {
			return err
		}
	}
}

func recipient(h textproto.Header) Recipient {
	addrField := h.Get("Final-Recipient")
	if addrField == "" {
		addrField = h.Get("Original-Recipient")
	}
	return Recipient{
		Address:        untrusted.Text(address(addrField), maxAddress),
		Action:         untrusted.Text(strings.ToLower(firstWord(h.Get("Action"))), maxWord),
		Status:         untrusted.Text(firstWord(h.Get("Status")), maxWord),
		DiagnosticCode: untrusted.Text(strings.TrimSpace(h.Get("Diagnostic-Code")), maxDiagnostic),
		RemoteMTA:      untrusted.Text(untype(h.Get("Remote-MTA")), maxHost),
		LastAttempt:    parseDate(h.Get("Last-Attempt-Date")),
	}
}

// address reads "type; address", decoding utf-8-addr-xtext for the utf-8
// type and dropping angle brackets some MTAs add.
func address(v string) string {
	typ, addr, ok := strings.Cut(v, ";")
	if !ok {
		addr = typ
		typ = ""
	}
	addr = strings.TrimSpace(addr)
	if strings.EqualFold(strings.TrimSpace(typ), "utf-8") {
		// An escaped space at either end decodes to one: trim again.
		addr = strings.TrimSpace(decodeUTF8Xtext(addr))
	}
	if strings.HasPrefix(addr, "<") && strings.HasSuffix(addr, ">") {
		addr = addr[1 : len(addr)-1]
	}
	return addr
}

// decodeUTF8Xtext undoes RFC 6533 "\x{HEX}" escapes; malformed escapes are
// kept as they are.
func decodeUTF8Xtext(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, `\x{`)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		rest := s[i+3:]
		end := strings.IndexByte(rest, '}')
		if end < 1 || end > 6 {
			b.WriteString(`\x{`)
			s = rest
			continue
		}
		n, err := strconv.ParseUint(rest[:end], 16, 32)
		if err != nil {
			b.WriteString(`\x{`)
			s = rest
			continue
		}
		b.WriteRune(rune(n))
		s = rest[end+1:]
	}
}

// untype drops an MTA-name-type such as "dns;" from a field value.
func untype(v string) string {
	if _, rest, ok := strings.Cut(v, ";"); ok {
		return strings.TrimSpace(rest)
	}
	return strings.TrimSpace(v)
}

func firstWord(v string) string {
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return ""
}

func parseDate(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	t, err := mail.ParseDate(strings.TrimSpace(v))
	if err != nil {
		return time.Time{}
	}
	return t
}

// parseReturned keeps the returned header block and reads its Message-ID and
// X-Postal-MsgID.
func parseReturned(body io.Reader, rep *Report) error {
	br := bufio.NewReader(io.LimitReader(body, maxPartBytes))
	var raw bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		blank := len(bytes.TrimRight(line, "\r\n")) == 0
		switch {
		case blank && len(line) > 0 && raw.Len() == 0 && err == nil:
			continue // blank lines before the header block
		case blank:
			// The empty line ending the block, or the end of the part.
		default:
			raw.Write(line)
		}
		if blank || errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	rep.OriginalHeaders = raw.Bytes()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(append(raw.Bytes(), "\r\n"...))))
	if err != nil && !errors.Is(err, io.EOF) {
		// Keep the raw block; a malformed line only hides the IDs.
		return nil
	}
	rep.OriginalMessageID = messageID(h.Get("Message-Id"))
	rep.PostalMessageID = untrusted.Text(strings.TrimSpace(h.Get("X-Postal-Msgid")), maxMessageID)
	return nil
}

// messageID returns the first <...> of v without brackets, or v trimmed,
// made safe by untrusted.Text.
func messageID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i+1 : i+j]
		}
	}
	return untrusted.Text(v, maxMessageID)
}
