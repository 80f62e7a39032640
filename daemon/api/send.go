package api

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"

	"github.com/postalgo/postal/daemon/compose"
	"github.com/postalgo/postal/daemon/intake"
	"github.com/postalgo/postal/daemon/store"
)

// Caps on what one request may carry (Postal has none but the 50 per list).
const (
	maxPerList       = 50
	maxRawRecipients = 1000
	maxAttachments   = 100
	maxHeaders       = 100
	maxAddressLength = 1000
	maxHeaderValue   = 8 << 10
	maxShortText     = 64 << 10 // from, subject, tag and similar
	storedTextLimit  = 1000     // what the message row keeps of a text
)

// sendMessage is /api/v1/send/message.
func (rq *request) sendMessage() (any, error) {
	p := rq.p
	to, err := p.list("to", maxPerList*20)
	if err != nil {
		return nil, err
	}
	cc, err := p.list("cc", maxPerList*20)
	if err != nil {
		return nil, err
	}
	bcc, err := p.list("bcc", maxPerList*20)
	if err != nil {
		return nil, err
	}
	var text = map[string]string{}
	for _, name := range []string{"from", "sender", "subject", "reply_to", "tag"} {
		if text[name], err = p.str(name, maxShortText); err != nil {
			return nil, err
		}
	}
	var plain, html *string
	for _, b := range []struct {
		name string
		dst  **string
	}{{"plain_body", &plain}, {"html_body", &html}} {
		if !p.present(b.name) {
			continue
		}
		s, err := p.str(b.name, int(rq.h.o.MaxBodyBytes))
		if err != nil {
			return nil, err
		}
		*b.dst = &s
	}
	attachments, err := readAttachments(p)
	if err != nil {
		return nil, err
	}
	headers, err := readHeaders(p)
	if err != nil {
		return nil, err
	}

	// Postal's validation order; only the first failure is reported.
	switch {
	case len(to)+len(cc)+len(bcc) == 0:
		return nil, errNoRecipients
	case len(to) > maxPerList:
		return nil, errTooManyTo
	case len(cc) > maxPerList:
		return nil, errTooManyCC
	case len(bcc) > maxPerList:
		return nil, errTooManyBCC
	case blank(p["plain_body"]) && blank(p["html_body"]):
		return nil, errNoContent
	case strings.TrimSpace(text["from"]) == "":
		return nil, errFromMissing
	}
	ctx := rq.r.Context()
	domains, err := rq.h.cache.domains(ctx, rq.h.o.Store, rq.auth.Server.ID)
	if err != nil {
		return nil, err
	}
	domain := authorisedDomain(domains, stripName(text["from"]))
	if domain == nil && rq.auth.Server.AllowSender && strings.TrimSpace(text["sender"]) != "" {
		domain = authorisedDomain(domains, stripName(text["sender"]))
	}
	if domain == nil {
		return nil, errUnauthFrom
	}
	for _, a := range attachments {
		if strings.TrimSpace(a.Name) == "" {
			return nil, errAttachNoName
		}
		if len(a.Data) == 0 {
			return nil, errAttachNoData
		}
	}
	// Ours: a custom header name must be a field name (Postal would build
	// a broken message), and recipients must be addresses.
	for _, hd := range headers {
		if !compose.ValidFieldName(hd.Name) {
			return nil, errInvalidHeader.withMessage(fmt.Sprintf("The custom header name %q is not a valid header field name", cleanText(hd.Name, 100)))
		}
	}
	var rcpts []string
	for _, list := range [][]string{to, cc, bcc} {
		for _, a := range list {
			addr := stripName(a)
			if !plausibleAddress(addr) {
				return nil, errInvalidRecipients.withMessage(fmt.Sprintf("The recipient %q is not a valid e-mail address", cleanText(a, 200)))
			}
			rcpts = append(rcpts, addr)
		}
	}

	msgID := newUUID() + "@" + rq.h.o.ReturnPathDomain
	now := rq.h.o.Now()
	raw, err := compose.Build(compose.Message{
		Received: rq.received(now), Date: now,
		From: text["from"], Sender: text["sender"], ReplyTo: text["reply_to"], To: to, Cc: cc,
		MessageID: msgID, Subject: text["subject"], Plain: plain, HTML: html,
		Attachments: attachments, Headers: headers,
	})
	if err != nil {
		return nil, errInvalidHeader.withMessage(err.Error())
	}
	subject := cleanText(decodeWords(text["subject"]), storedTextLimit)
	mailFrom := cleanText(stripName(text["from"]), storedTextLimit)
	tag := text["tag"]
	if tag == "" {
		// Postal takes a message's tag, when it has none, from its last
		// X-Postal-Tag header (at dequeue; the same tag, decided here).
		for _, hd := range headers {
			if strings.EqualFold(hd.Name, "X-Postal-Tag") {
				tag = strings.TrimSpace(hd.Value)
			}
		}
	}
	tag = cleanText(tag, storedTextLimit)
	msgs := make([]store.NewMessage, len(rcpts))
	for i, addr := range rcpts {
		msgs[i] = rq.outgoing(addr, mailFrom, subject, msgID, tag, domain.ID, p.truthy("bounce"))
	}
	accepted, err := rq.submit(store.Submission{Raw: raw, Messages: msgs})
	if err != nil {
		return nil, err
	}
	return sendResult(msgID, accepted), nil
}

// outgoing is one recipient's message row of an API submission.
func (rq *request) outgoing(rcpt, mailFrom, subject, msgID, tag string, domainID int64, bounce bool) store.NewMessage {
	return store.NewMessage{
		ServerID: rq.auth.Server.ID, Scope: store.ScopeOutgoing, RcptTo: cleanText(rcpt, storedTextLimit),
		MailFrom: mailFrom, Subject: subject, MessageID: cleanText(msgID, storedTextLimit), Tag: tag,
		Bounce: bounce, DomainID: domainID, CredentialID: rq.auth.Credential.ID, ReceivedWithSSL: true,
		Queue: true, QueueDomain: cleanText(addressDomain(rcpt), 255),
	}
}

// submit stores sub through the intake (committed before it returns).
func (rq *request) submit(sub store.Submission) ([]store.Accepted, error) {
	sub.IdempotencyID = rq.idemID
	accepted, err := rq.h.o.Intake.Submit(rq.r.Context(), sub)
	if err != nil {
		if errors.Is(err, intake.ErrStopped) {
			return nil, errInternal.withMessage("The server is shutting down; nothing was stored; retry")
		}
		return nil, fmt.Errorf("submit: %w", err)
	}
	return accepted, nil
}

// sendResult is the success data of both send endpoints: {message_id,
// messages: {rcpt: {id, token}}}; a recipient given twice keeps the last.
func sendResult(msgID any, accepted []store.Accepted) object {
	var msgs object
	seen := map[string]int{}
	for _, a := range accepted {
		v := object{{"id", a.MessageID}, {"token", a.Token}}
		if i, ok := seen[a.RcptTo]; ok {
			msgs[i].v = v
			continue
		}
		seen[a.RcptTo] = len(msgs)
		msgs = append(msgs, field{a.RcptTo, v})
	}
	if msgs == nil {
		msgs = object{}
	}
	return object{{"message_id", msgID}, {"messages", msgs}}
}

// received is the Received field value of an API message: "from api
// (<reverse DNS name or ip> [<ip>]) by <web_hostname> with HTTP; <date>",
// without the from part for a privacy-mode server.
func (rq *request) received(now time.Time) string {
	var b strings.Builder
	if !rq.auth.Server.PrivacyMode {
		ip, name := "unknown", "unknown"
		if a := rq.h.clientIP(rq.r); a.IsValid() {
			ip = a.String()
			name = rq.h.cache.reverseName(rq.r.Context(), ip, rq.h.o.DNSTimeout, rq.h.o.LookupAddr)
		}
		fmt.Fprintf(&b, "from api (%s [%s]) ", name, ip)
	}
	fmt.Fprintf(&b, "by %s with HTTP; %s", rq.h.o.WebHostname, now.UTC().Format(time.RFC1123Z))
	return b.String()
}

// readAttachments reads `attachments`: an array of {name, content_type,
// data (Base64)}; entries that are not objects are dropped (as Postal
// does); anything but an array means none.
func readAttachments(p params) ([]compose.Attachment, error) {
	list, ok := p["attachments"].([]any)
	if !ok {
		return nil, nil
	}
	if len(list) > maxAttachments {
		return nil, errTooManyAttach
	}
	var out []compose.Attachment
	for _, e := range list {
		obj, ok := e.(map[string]any)
		if !ok {
			continue
		}
		a := params(obj)
		name, err := a.str("name", 1000)
		if err != nil {
			return nil, paramErrorf("attachment `name` must be a string of at most 1000 bytes")
		}
		ct, err := a.str("content_type", 1000)
		if err != nil {
			return nil, paramErrorf("attachment `content_type` must be a string of at most 1000 bytes")
		}
		data, ok := scalarText(a["data"])
		if !ok {
			return nil, paramErrorf("attachment `data` must be a Base64 string")
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		out = append(out, compose.Attachment{Name: name, ContentType: ct, Data: decodeBase64(data)})
	}
	return out, nil
}

// readHeaders reads `headers`: an object of name to value, values taken as
// text; anything but an object means none. Names keep the order given.
func readHeaders(p params) ([]compose.Header, error) {
	obj, ok := p["headers"].(map[string]any)
	if !ok {
		return nil, nil
	}
	if len(obj) > maxHeaders {
		return nil, errTooManyHeaders
	}
	names := orderedKeys(obj, p.rawHeadersOrder())
	out := make([]compose.Header, 0, len(names))
	for _, name := range names {
		v, ok := scalarText(obj[name])
		if !ok {
			b, _ := marshal(obj[name])
			v = string(b)
		}
		if len(v) > maxHeaderValue {
			return nil, paramErrorf("the value of custom header %q is longer than %d bytes", cleanText(name, 100), maxHeaderValue)
		}
		out = append(out, compose.Header{Name: name, Value: v})
	}
	return out, nil
}

// authorisedDomain is Postal's Server#authenticated_domain_for_address:
// the verified domain of the server named by addr's domain, else the
// server's first verified use_for_any domain (domains are sorted by name).
// (Our domains belong to servers only; Postal's organisation-owned
// domains do not exist here.)
func authorisedDomain(domains []*store.Domain, addr string) *store.Domain {
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

var commentRE = regexp.MustCompile(`\(.+?\)`)

// stripName is Postal's strip_name_from_address: the text inside the
// angle brackets when there are some, without comments, trimmed.
func stripName(s string) string {
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '>'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(commentRE.ReplaceAllString(s, ""))
}

// addressDomain is the lower-cased domain of an address, "" without one.
func addressDomain(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
}

// plausibleAddress accepts local@domain with no spaces, controls or
// brackets, within SMTP's length limits.
func plausibleAddress(a string) bool {
	if len(a) > 320 || addressDomain(a) == "" || strings.LastIndexByte(a, '@') == 0 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; c <= ' ' || c == 127 || c == '<' || c == '>' || c == ',' {
			return false
		}
	}
	return true
}

// sendRaw is /api/v1/send/raw.
func (rq *request) sendRaw() (any, error) {
	p := rq.p
	list, ok := p["rcpt_to"].([]any)
	if !ok {
		return nil, paramErr("`rcpt_to` parameter is required but is missing")
	}
	if blank(p["mail_from"]) {
		return nil, paramErr("`mail_from` parameter is required but is missing")
	}
	if blank(p["data"]) {
		return nil, paramErr("`data` parameter is required but is missing")
	}
	if len(list) > maxRawRecipients {
		return nil, paramErr(fmt.Sprintf("`rcpt_to` parameter has more than %d addresses", maxRawRecipients))
	}
	mailFrom, err := p.str("mail_from", maxShortText)
	if err != nil {
		return nil, err
	}
	data, ok := scalarText(p["data"])
	if !ok {
		return nil, paramErr("`data` parameter must be a Base64 string")
	}
	var rcpts []string
	seen := map[string]bool{}
	for _, e := range list {
		s, ok := scalarText(e)
		if !ok {
			return nil, paramErr("`rcpt_to` parameter must be an array of strings")
		}
		if seen[s] {
			continue
		}
		seen[s] = true
		if !plausibleAddress(s) {
			return nil, errInvalidRecipients.withMessage(fmt.Sprintf("The recipient %q is not a valid e-mail address", cleanText(s, 200)))
		}
		rcpts = append(rcpts, s)
	}
	raw := decodeBase64(data)
	hdr := rawHeader(raw)
	ctx := rq.r.Context()
	domains, err := rq.h.cache.domains(ctx, rq.h.o.Store, rq.auth.Server.ID)
	if err != nil {
		return nil, err
	}
	domain := headerDomain(domains, hdr, "From")
	if domain == nil && rq.auth.Server.AllowSender {
		domain = headerDomain(domains, hdr, "Sender")
	}
	if domain == nil {
		return nil, errUnauthRawFrom
	}
	if len(rcpts) == 0 {
		if rq.idemID != 0 {
			if err := rq.h.o.Store.CompleteIdempotencyKey(ctx, rq.idemID); err != nil {
				return nil, err
			}
		}
		return sendResult(nil, nil), nil
	}
	subject := cleanText(decodeWords(lastValue(hdr, "Subject")), storedTextLimit)
	msgID := cleanText(bareMessageID(lastValue(hdr, "Message-Id")), storedTextLimit)
	mf := cleanText(mailFrom, storedTextLimit)
	tag := cleanText(strings.TrimSpace(decodeWords(lastValue(hdr, "X-Postal-Tag"))), storedTextLimit)
	msgs := make([]store.NewMessage, len(rcpts))
	for i, addr := range rcpts {
		msgs[i] = rq.outgoing(addr, mf, subject, msgID, tag, domain.ID, p.truthy("bounce"))
	}
	accepted, err := rq.submit(store.Submission{Raw: raw, Messages: msgs})
	if err != nil {
		return nil, err
	}
	var id any
	if msgID != "" {
		id = msgID
	}
	return sendResult(id, accepted), nil
}

// rawHeader parses the header block of a raw message (the part before the
// first blank line); a block that does not parse counts as empty.
func rawHeader(raw []byte) textproto.Header {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = bytes.Index(raw, []byte("\n\n"))
	}
	block := raw
	if end >= 0 {
		block = raw[:end]
	}
	h, err := textproto.ReadHeader(bufio.NewReader(io.MultiReader(bytes.NewReader(block), strings.NewReader("\r\n\r\n"))))
	if err != nil {
		return textproto.Header{}
	}
	return h
}

// headerDomain authorises every address of every field called name; the
// domain of the first wins; none, or one address unauthorised, is nil.
func headerDomain(domains []*store.Domain, h textproto.Header, name string) *store.Domain {
	values := h.Values(name)
	var first *store.Domain
	for _, v := range values {
		addrs := headerAddresses(v)
		if len(addrs) == 0 {
			return nil
		}
		for _, a := range addrs {
			d := authorisedDomain(domains, a)
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

// headerAddresses reads an address-list value; one net/mail cannot parse
// falls back to the text inside its angle brackets.
func headerAddresses(v string) []string {
	if list, err := (&mail.AddressParser{WordDecoder: &mime.WordDecoder{}}).ParseList(v); err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, a.Address)
		}
		return out
	}
	if a := stripName(v); a != "" {
		return []string{a}
	}
	return nil
}

func lastValue(h textproto.Header, name string) string {
	v := h.Values(name)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// bareMessageID is a Message-ID without its angle brackets.
func bareMessageID(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "<")
	if i := strings.IndexByte(v, '>'); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// decodeWords decodes RFC 2047 encoded words; text that does not decode is
// kept.
func decodeWords(s string) string {
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// cleanText makes s safe to store and echo: valid UTF-8, no NUL, at most
// limit bytes (cut on a rune boundary).
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

// newUUID is a random (version 4) UUID in lower-case hex.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}
