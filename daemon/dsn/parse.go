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
)

// maxPartBytes bounds how much of one part Parse reads.
const maxPartBytes = 1 << 20

// Parse reads a received notification. It walks the whole MIME tree, takes
// the first message/delivery-status (or message/global-delivery-status)
// part and the first returned header block (text/rfc822-headers,
// message/rfc822 and their global forms). It returns ErrNotDSN when there is
// no delivery-status part, and a wrapped parse error when the MIME structure
// or the status fields are malformed.
func Parse(raw []byte) (*Report, error) {
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !lenient(err) {
		return nil, fmt.Errorf("dsn: parse: %w", err)
	}
	rep := &Report{}
	found := false
	walkErr := e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil && !lenient(err) {
			return err
		}
		mt, params, _ := part.Header.ContentType()
		switch strings.ToLower(mt) {
		case "multipart/report":
			if rep.ReportType == "" {
				rep.ReportType = strings.ToLower(params["report-type"])
			}
		case "message/delivery-status", "message/global-delivery-status":
			if found {
				return nil
			}
			found = true
			body, err := io.ReadAll(io.LimitReader(part.Body, maxPartBytes))
			if err != nil {
				return fmt.Errorf("delivery-status part: %w", err)
			}
			if err := parseStatus(body, rep); err != nil {
				return fmt.Errorf("delivery-status part: %w", err)
			}
		case "text/rfc822-headers", "message/rfc822-headers", "message/global-headers",
			"message/rfc822", "message/global":
			if rep.OriginalHeaders != nil {
				return nil
			}
			if err := parseReturned(part.Body, rep); err != nil {
				return fmt.Errorf("returned headers: %w", err)
			}
		}
		return nil
	})
	if walkErr != nil {
		return nil, fmt.Errorf("dsn: parse: %w", walkErr)
	}
	if !found {
		return nil, ErrNotDSN
	}
	if rep.OriginalMessageID == "" {
		rep.OriginalMessageID = messageID(e.Header.Get("In-Reply-To"))
	}
	return rep, nil
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
				rep.ReportingMTA = untype(v)
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
		Address:        address(addrField),
		Action:         strings.ToLower(firstWord(h.Get("Action"))),
		Status:         firstWord(h.Get("Status")),
		DiagnosticCode: h.Get("Diagnostic-Code"),
		RemoteMTA:      untype(h.Get("Remote-MTA")),
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
		addr = decodeUTF8Xtext(addr)
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
	rep.PostalMessageID = strings.TrimSpace(h.Get("X-Postal-Msgid"))
	return nil
}

// messageID returns the first <...> of v without brackets, or v trimmed.
func messageID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	return v
}
