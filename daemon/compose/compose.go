// Package compose builds the RFC 5322 message that Postal's HTTP API builds
// for send/message: its header order, its MIME layout (multipart/mixed
// around multipart/alternative, attachments after) and its encodings. It is
// a leaf: values in, bytes out.
//
// Contract of Build: the output has CRLF line endings, no header line
// longer than 998 octets (long values are folded at spaces), no raw CR or
// LF inside a header value (callers' values are cleaned, so a value cannot
// add a header field), non-ASCII header text RFC 2047-encoded, 7bit text
// parts when every line is ASCII and at most 998 octets, otherwise
// quoted-printable, and attachments in base64. Build fails only on a custom
// header whose name is not an RFC 5322 field name.
package compose

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/untrusted"
)

// Header is a custom header field, in the order given.
type Header struct {
	Name  string
	Value string
}

// Attachment is one attached file.
type Attachment struct {
	Name        string
	ContentType string // application/octet-stream when empty or malformed
	Data        []byte
}

// Message is what send/message builds a message from. Empty strings leave
// a field out; Plain and HTML are parts only when non-nil.
type Message struct {
	// Received is the value of the first Received field ("" for none).
	Received  string
	Date      time.Time
	From      string
	Sender    string
	ReplyTo   string
	To        []string
	Cc        []string
	MessageID string // without angle brackets
	Subject   string
	Plain     *string
	HTML      *string
	// Attachments follow the text parts inside multipart/mixed.
	Attachments []Attachment
	// Headers are custom fields, placed last. Those Postal always takes
	// from the parameters (From, Sender, Reply-To, Subject, Message-ID) and
	// the ones the structure owns (MIME-Version, Content-Type,
	// Content-Transfer-Encoding, Bcc) are dropped; To and Cc are dropped
	// when the matching list is non-empty, otherwise kept in their place; a
	// custom Date replaces the generated one.
	Headers []Header
	// Boundary returns a MIME boundary; nil uses random ones.
	Boundary func() string
}

// ErrFieldName is wrapped by Build for a custom header name that is not
// a valid field name.
var ErrFieldName = errors.New("invalid header field name")

// Build returns the message as bytes.
func Build(m Message) ([]byte, error) {
	boundary := m.Boundary
	if boundary == nil {
		boundary = randomBoundary
	}
	// Custom fields that take a standard field's place, or are dropped.
	var customTo, customCc, customDate string
	var custom []Header
	for _, h := range m.Headers {
		if !ValidFieldName(h.Name) {
			return nil, fmt.Errorf("%w: %q", ErrFieldName, h.Name)
		}
		switch strings.ToLower(h.Name) {
		case "from", "sender", "reply-to", "subject", "message-id", "mime-version", "content-type",
			"content-transfer-encoding", "bcc":
			continue
		case "to":
			if len(m.To) == 0 {
				customTo = h.Value
			}
			continue
		case "cc":
			if len(m.Cc) == 0 {
				customCc = h.Value
			}
			continue
		case "date":
			customDate = h.Value
			continue
		}
		custom = append(custom, h)
	}

	var b bytes.Buffer
	if m.Received != "" {
		writeField(&b, "Received", clean(m.Received))
	}
	if customDate != "" {
		writeField(&b, "Date", encodeText(customDate))
	} else {
		writeField(&b, "Date", m.Date.Format(time.RFC1123Z))
	}
	writeAddressField(&b, "From", m.From)
	writeAddressField(&b, "Sender", m.Sender)
	writeAddressField(&b, "Reply-To", m.ReplyTo)
	if len(m.To) > 0 {
		writeAddressField(&b, "To", strings.Join(m.To, ", "))
	} else {
		writeAddressField(&b, "To", customTo)
	}
	if len(m.Cc) > 0 {
		writeAddressField(&b, "Cc", strings.Join(m.Cc, ", "))
	} else {
		writeAddressField(&b, "Cc", customCc)
	}
	if m.MessageID != "" {
		writeField(&b, "Message-ID", "<"+clean(m.MessageID)+">")
	}
	if m.Subject != "" {
		writeField(&b, "Subject", encodeText(m.Subject))
	}
	writeField(&b, "Mime-Version", "1.0")
	mixed := boundary()
	writeField(&b, "Content-Type", `multipart/mixed; boundary="`+mixed+`"`)
	writeField(&b, "Content-Transfer-Encoding", "7bit")
	for _, h := range custom {
		writeField(&b, h.Name, encodeText(h.Value))
	}
	b.WriteString("\r\n")

	// multipart/mixed: the alternative part, then each attachment.
	alt := boundary()
	b.WriteString("\r\n--" + mixed + "\r\n")
	writeField(&b, "Content-Type", `multipart/alternative; boundary="`+alt+`"`)
	writeField(&b, "Content-Transfer-Encoding", "7bit")
	b.WriteString("\r\n")
	for _, part := range []struct {
		typ  string
		body *string
	}{{"text/plain", m.Plain}, {"text/html", m.HTML}} {
		if part.body == nil {
			continue
		}
		b.WriteString("\r\n--" + alt + "\r\n")
		writeText(&b, part.typ, *part.body)
	}
	b.WriteString("\r\n--" + alt + "--\r\n")
	for _, a := range m.Attachments {
		b.WriteString("\r\n--" + mixed + "\r\n")
		writeAttachment(&b, a)
	}
	b.WriteString("\r\n--" + mixed + "--\r\n")
	return b.Bytes(), nil
}

func randomBoundary() string {
	var r [12]byte
	_, _ = rand.Read(r[:]) // crypto/rand never fails
	return "--==_mimepart_" + hex.EncodeToString(r[:])
}

// ValidFieldName reports whether name is an RFC 5322 field name:
// 1 to 76 printable US-ASCII characters except the colon.
func ValidFieldName(name string) bool {
	if name == "" || len(name) > 76 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// clean makes s one header line's worth of text: CR, LF and other control
// characters become spaces, and invalid UTF-8 is replaced.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 32 && r != '\t' || r == 127 }

// encodeText is an unstructured header value: cleaned, and RFC 2047
// Q-encoded (in words of at most 75 octets) when it is not ASCII.
func encodeText(s string) string {
	s = clean(s)
	if untrusted.IsASCII(s) {
		return s
	}
	return mime.QEncoding.Encode("UTF-8", s)
}

// writeAddressField writes an address-list field unless v is empty. A list
// net/mail can read is written back with non-ASCII display names encoded;
// one it cannot is written as given (encoded if it is not ASCII).
func writeAddressField(b *bytes.Buffer, name, v string) {
	v = strings.TrimSpace(clean(v))
	if v == "" {
		return
	}
	if untrusted.IsASCII(v) {
		writeField(b, name, v)
		return
	}
	if list, err := mail.ParseAddressList(v); err == nil {
		parts := make([]string, len(list))
		for i, a := range list {
			parts[i] = a.String()
		}
		writeField(b, name, strings.Join(parts, ", "))
		return
	}
	writeField(b, name, mime.QEncoding.Encode("UTF-8", v))
}

// writeField writes "Name: value" folded at spaces so that lines stay
// within 78 octets where a space allows, and always within 998.
func writeField(b *bytes.Buffer, name, value string) {
	line := name + ": " + value
	const soft, hard = 78, 998
	for len(line) > soft {
		cut := strings.LastIndexByte(line[:soft], ' ')
		if cut <= len(name)+1 {
			// No space early enough: fold at the next space, or hard-cut a
			// run longer than the line limit (only binary junk has one).
			next := strings.IndexByte(line[soft:], ' ')
			switch {
			case next >= 0 && soft+next <= hard:
				cut = soft + next
			case len(line) <= hard:
				cut = -1
			default:
				cut = hard
			}
		}
		if cut < 0 {
			break
		}
		b.WriteString(line[:cut])
		b.WriteString("\r\n")
		rest := strings.TrimLeft(line[cut:], " ")
		if rest == "" {
			return
		}
		line = "\t" + rest
	}
	b.WriteString(line)
	b.WriteString("\r\n")
}

// crlf normalises line endings to CRLF.
func crlf(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// sevenBit reports whether s can travel as 7bit: ASCII, no NUL, and no
// line longer than 998 octets.
func sevenBit(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c == 0 {
			return false
		}
		if c == '\n' {
			run = 0
			continue
		}
		if run++; run > 998 {
			return false
		}
	}
	return true
}

func writeText(b *bytes.Buffer, typ, body string) {
	body = crlf(strings.ToValidUTF8(body, "\uFFFD"))
	writeField(b, "Content-Type", typ+"; charset=UTF-8")
	if sevenBit(body) {
		writeField(b, "Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n")
		b.WriteString(body) // the CRLF before the next delimiter belongs to it
		return
	}
	writeField(b, "Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	w := quotedprintable.NewWriter(b)
	_, _ = w.Write([]byte(body)) // writes to a bytes.Buffer never fail
	_ = w.Close()
}

// mediaType returns ct when it is a well-formed media type, else
// application/octet-stream.
func mediaType(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") {
		return "application/octet-stream"
	}
	return mime.FormatMediaType(mt, params)
}

func writeAttachment(b *bytes.Buffer, a Attachment) {
	name := clean(a.Name)
	ct := mediaType(a.ContentType)
	mt, params, _ := mime.ParseMediaType(ct)
	if params == nil {
		params = map[string]string{}
	}
	params["filename"] = name
	if v := mime.FormatMediaType(mt, params); v != "" {
		ct = v
	}
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	if disp == "" {
		disp = "attachment"
	}
	writeField(b, "Content-Type", ct)
	writeField(b, "Content-Transfer-Encoding", "base64")
	writeField(b, "Content-Disposition", disp)
	b.WriteString("\r\n")
	enc := base64.StdEncoding.EncodeToString(a.Data)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
}
