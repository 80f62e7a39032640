package smtpserver

import (
	"crypto/rand"
	"encoding/hex"
	"mime"
	"net/mail"
	"strings"

	"github.com/postalgo/postal/daemon/mailheader"
	"github.com/postalgo/postal/daemon/store"
)

// receivedBy counts the Received fields that name host as the receiving
// server (Postal's loop detection).
func receivedBy(h mailheader.Header, host string) int {
	needle := "by " + strings.ToLower(host)
	n := 0
	for _, v := range h.Values("Received") {
		if strings.Contains(strings.ToLower(v), needle) {
			n++
		}
	}
	return n
}

// storedTextLimit bounds the header values stored on message rows.
const storedTextLimit = 1000

// subject is the decoded Subject, as stored on the message row: at most
// storedTextLimit bytes of valid UTF-8 without NUL. Only the start of a
// long value is decoded.
func subject(h mailheader.Header) string {
	v := h.First("Subject")
	if len(v) > 8*storedTextLimit {
		v = v[:8*storedTextLimit]
	}
	if d, err := new(mime.WordDecoder).DecodeHeader(v); err == nil {
		v = d
	}
	return mailheader.Clean(v, storedTextLimit)
}

// messageID is the Message-ID without its angle brackets, "" when absent,
// cleaned as subject is.
func messageID(h mailheader.Header) string {
	v := strings.TrimSpace(h.First("Message-ID"))
	v = strings.TrimPrefix(v, "<")
	if i := strings.IndexByte(v, '>'); i >= 0 {
		v = v[:i]
	}
	return mailheader.Clean(strings.TrimSpace(v), storedTextLimit)
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
func authenticatedDomain(domains []*store.Domain, allowSender bool, h mailheader.Header) *store.Domain {
	fields := []string{"From"}
	if allowSender {
		fields = append(fields, "Sender")
	}
	for _, name := range fields {
		if d := domainForValues(domains, h.Values(name)); d != nil {
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

// assembledSize bounds the length of what assemble returns.
func assembledSize(msg []byte, received string, extra []string) int {
	size := len(received) + len(msg) + 4
	for _, e := range extra {
		size += len(e) + 2
	}
	return size
}

// assemble returns the message as stored: the Received field first, the
// original header block, the extra fields at its end (mailheader's End),
// then the rest unchanged. When the original header block ended at a line
// that is not a field (no empty separator line), an empty line is put
// before that line, so that the stored message has an RFC 5322 separator
// and every reader agrees that the line is body: the stored message's body
// is always the original's.
func assemble(msg []byte, h mailheader.Header, received string, extra []string) []byte {
	end := h.End()
	out := make([]byte, 0, assembledSize(msg, received, extra))
	out = append(out, received...)
	out = append(out, msg[:end]...)
	if end > 0 && msg[end-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	for _, e := range extra {
		out = append(out, e...)
		out = append(out, '\r', '\n')
	}
	if end == h.BodyStart() && end < len(msg) {
		out = append(out, '\r', '\n')
	}
	return append(out, msg[end:]...)
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
