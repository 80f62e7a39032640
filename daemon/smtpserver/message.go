package smtpserver

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"mime"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/store"
)

// header is the header block of a message as the SMTP server needs it:
// the fields in order, with folded values unfolded, and where the block
// ends. Only the header is parsed; the body is never looked at.
type header struct {
	fields []headerField
	// end is the offset of the line that ends the header block (the empty
	// separator line, or the first line that is not a header field), or
	// len(message) when the message is all header.
	end int
}

type headerField struct {
	name  string
	value string
}

// parseHeader reads the header block at the start of msg. It never fails:
// a line that is not a field ends the block, as a mail reader would treat
// it.
func parseHeader(msg []byte) header {
	var h header
	i := 0
	for i < len(msg) {
		next := bytes.IndexByte(msg[i:], '\n')
		lineEnd := len(msg)
		if next >= 0 {
			lineEnd = i + next + 1
		}
		line := bytes.TrimRight(msg[i:lineEnd], "\r\n")
		switch {
		case len(line) == 0:
			h.end = i
			return h
		case line[0] == ' ' || line[0] == '\t':
			if len(h.fields) == 0 {
				h.end = i
				return h
			}
			f := &h.fields[len(h.fields)-1]
			f.value += " " + strings.TrimSpace(string(line))
		default:
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 || !validFieldName(line[:colon]) {
				h.end = i
				return h
			}
			h.fields = append(h.fields, headerField{
				name:  string(line[:colon]),
				value: strings.TrimSpace(string(line[colon+1:])),
			})
		}
		i = lineEnd
	}
	h.end = len(msg)
	return h
}

// validFieldName reports whether b is an RFC 5322 field name: printable
// US-ASCII except the colon. Trailing spaces before the colon (obsolete
// syntax) are tolerated.
func validFieldName(b []byte) bool {
	b = bytes.TrimRight(b, " \t")
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// values returns every value of the named field (case-insensitive), in
// order.
func (h header) values(name string) []string {
	var out []string
	for _, f := range h.fields {
		if strings.EqualFold(strings.TrimRight(f.name, " \t"), name) {
			out = append(out, f.value)
		}
	}
	return out
}

// first returns the first value of the named field, "" when absent.
func (h header) first(name string) string {
	if v := h.values(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// receivedBy counts the Received fields that name host as the receiving
// server (Postal's loop detection).
func (h header) receivedBy(host string) int {
	needle := "by " + strings.ToLower(host)
	n := 0
	for _, v := range h.values("Received") {
		if strings.Contains(strings.ToLower(v), needle) {
			n++
		}
	}
	return n
}

// subject is the decoded Subject, as stored on the message row.
func (h header) subject() string {
	v := h.first("Subject")
	if d, err := new(mime.WordDecoder).DecodeHeader(v); err == nil {
		v = d
	}
	return cleanText(v, 1000)
}

// messageID is the Message-ID without its angle brackets, "" when absent.
func (h header) messageID() string {
	v := strings.TrimSpace(h.first("Message-ID"))
	v = strings.TrimPrefix(v, "<")
	if i := strings.IndexByte(v, '>'); i >= 0 {
		v = v[:i]
	}
	return cleanText(strings.TrimSpace(v), 1000)
}

// addresses returns the addresses of an address-list field value. A value
// net/mail cannot parse falls back to Postal's reading: the text inside the
// last <...>, or the whole value.
func addresses(v string) []string {
	if list, err := mail.ParseAddressList(v); err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, a.Address)
		}
		return out
	}
	v = strings.TrimSpace(v)
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	if v = strings.TrimSpace(v); v == "" {
		return nil
	}
	return []string{v}
}

// addressDomain is the lower-cased domain of an address, "" without one.
func addressDomain(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
}

// authenticatedDomain applies Postal's rule for mail sent with a
// credential: every address of the From field(s) must be on a verified
// domain of the server, or the server has a verified use_for_any domain;
// with allow_sender the Sender field may pass instead. It returns the
// domain the message is sent as (that of the first address), nil when the
// message may not be sent. domains must be sorted by name.
func authenticatedDomain(domains []*store.Domain, allowSender bool, h header) *store.Domain {
	fields := []string{"From"}
	if allowSender {
		fields = append(fields, "Sender")
	}
	for _, name := range fields {
		if d := domainForValues(domains, h.values(name)); d != nil {
			return d
		}
	}
	return nil
}

func domainForValues(domains []*store.Domain, values []string) *store.Domain {
	var first *store.Domain
	for _, v := range values {
		addrs := addresses(v)
		if len(addrs) == 0 {
			return nil
		}
		for _, a := range addrs {
			d := domainForAddress(domains, a)
			if d == nil {
				return nil
			}
			if first == nil {
				first = d
			}
		}
	}
	return first
}

func domainForAddress(domains []*store.Domain, addr string) *store.Domain {
	name := addressDomain(addr)
	if name == "" {
		return nil
	}
	for _, d := range domains {
		if d.Verified() && d.Name == name {
			return d
		}
	}
	for _, d := range domains {
		if d.Verified() && d.UseForAny {
			return d
		}
	}
	return nil
}

// assemble returns the message as stored: the Received field first, the
// original header block, the extra fields at its end, then the rest.
func assemble(msg []byte, h header, received string, extra []string) []byte {
	size := len(received) + len(msg) + 2
	for _, e := range extra {
		size += len(e) + 2
	}
	out := make([]byte, 0, size)
	out = append(out, received...)
	out = append(out, msg[:h.end]...)
	if h.end > 0 && msg[h.end-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	for _, e := range extra {
		out = append(out, e...)
		out = append(out, '\r', '\n')
	}
	return append(out, msg[h.end:]...)
}

// newMessageID returns a fresh Message-ID (without brackets): a random
// UUID at host.
func newMessageID(host string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:] + "@" + host
}

// cleanText makes s safe to store in a TEXT column on either database:
// valid UTF-8, no NUL, at most limit bytes (cut on a rune boundary).
func cleanText(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// hostnameText keeps the characters of a host name (or a HELO argument)
// that may appear in a Received field; the rest are dropped.
func hostnameText(s string) string {
	s = strings.TrimSuffix(s, ".")
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 255; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}
