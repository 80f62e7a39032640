package endpoint

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 parts and headers
	"github.com/emersion/go-message/mail"

	"github.com/postalgo/postal/daemon/untrusted"
)

// Encodings and formats of an HTTP endpoint, as Postal names them.
const (
	EncodingJSON     = "BodyAsJSON"
	EncodingFormData = "FormData"
	FormatHash       = "Hash"
	FormatRaw        = "RawMessage"
)

// Caps on what is taken from a message into a Hash payload.
const (
	// MaxParts bounds the MIME parts walked.
	MaxParts = 256
	// MaxHeaderValue bounds each header value quoted.
	MaxHeaderValue = 8 << 10
)

// HTTP is an HTTP endpoint's settings.
type HTTP struct {
	URL                string
	Encoding           string // EncodingJSON (default) or EncodingFormData
	Format             string // FormatHash (default) or FormatRaw
	StripReplies       bool
	IncludeAttachments bool
	// Timeout bounds the whole request; Postal allows 5 to 60 s (default 5).
	Timeout time.Duration
}

// Message is what an endpoint receives of one incoming message.
type Message struct {
	ID              int64
	RcptTo          string
	MailFrom        string
	Token           string
	Timestamp       time.Time
	Bounce          bool
	ReceivedWithSSL bool
	// SpamStatus is "Spam", "NotSpam" or "NotChecked" (default).
	SpamStatus string
	// Raw is the message as stored, with the headers Postal added.
	Raw []byte
}

// field is one key of a payload, in order.
type field struct {
	key string
	val any
}

// attachment is one attachment of a Hash payload.
type attachment struct {
	filename, contentType, fullType string
	data                            []byte
}

// Body returns the request body and its Content-Type for m sent to ep. It
// fails only when the payload cannot be encoded.
func Body(ep HTTP, m Message) ([]byte, string, error) {
	fields, atts := Fields(ep, m)
	if ep.Encoding == EncodingFormData {
		return formData(fields, atts), "application/x-www-form-urlencoded", nil
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := writeJSON(&buf, f.key); err != nil {
			return nil, "", fmt.Errorf("endpoint payload %s: %w", f.key, err)
		}
		buf.WriteByte(':')
		if f.key == "attachments" {
			f.val = jsonAttachments(atts)
		}
		if err := writeJSON(&buf, f.val); err != nil {
			return nil, "", fmt.Errorf("endpoint payload %s: %w", f.key, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), "application/json", nil
}

// writeJSON writes v as JSON without escaping <, > and & (as Ruby's JSON
// writes them) and without a trailing newline.
func writeJSON(buf *bytes.Buffer, v any) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1)
	return nil
}

type jsonAttachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int    `json:"size"`
	Data        string `json:"data"`
}

func jsonAttachments(atts []attachment) []jsonAttachment {
	out := make([]jsonAttachment, 0, len(atts))
	for _, a := range atts {
		out = append(out, jsonAttachment{Filename: a.filename, ContentType: a.contentType, Size: len(a.data),
			Data: encode64(a.data)})
	}
	return out
}

// Fields returns the payload's keys in Postal's order; the attachments key
// (when included) has a nil value, its list is returned apart.
func Fields(ep HTTP, m Message) ([]field, []attachment) {
	if ep.Format == FormatRaw {
		return []field{{"id", m.ID}, {"rcpt_to", m.RcptTo}, {"mail_from", m.MailFrom},
			{"message", encode64(m.Raw)}, {"base64", true}, {"size", len(m.Raw)}}, nil
	}
	p := parse(m.Raw, ep.IncludeAttachments)
	spam := m.SpamStatus
	if spam == "" {
		spam = "NotChecked"
	}
	var ssl any
	if m.ReceivedWithSSL {
		ssl = true
	}
	fields := []field{
		{"id", m.ID}, {"rcpt_to", m.RcptTo}, {"mail_from", m.MailFrom}, {"token", m.Token},
		{"subject", p.last("Subject")}, {"message_id", messageID(p.last("Message-Id"))},
		{"timestamp", float64(m.Timestamp.UnixMicro()) / 1e6}, {"size", strconv.Itoa(len(m.Raw))},
		{"spam_status", spam}, {"bounce", m.Bounce}, {"received_with_ssl", ssl},
		{"to", p.last("To")}, {"cc", p.last("Cc")}, {"from", p.last("From")}, {"date", p.last("Date")},
		{"in_reply_to", p.last("In-Reply-To")}, {"references", p.last("References")},
		{"html_body", p.html}, {"attachment_quantity", p.attachmentCount},
		{"auto_submitted", p.last("Auto-Submitted")}, {"reply_to", p.all("Reply-To")},
	}
	plain := p.plain
	if ep.StripReplies {
		text := ""
		if plain != nil {
			text = *plain
		}
		body, replies := StripReplies(text)
		fields = append(fields, field{"plain_body", body}, field{"replies_from_plain_body", replies})
	} else {
		fields = append(fields, field{"plain_body", plain})
	}
	if ep.IncludeAttachments {
		fields = append(fields, field{"attachments", nil})
	}
	return fields, p.attachments
}

// messageID strips the angle brackets of a Message-ID.
func messageID(v any) any {
	s, ok := v.(*string)
	if !ok || s == nil {
		return nil
	}
	id := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(*s), "<"), ">")
	return &id
}

// parsed is what a Hash payload takes from a message.
type parsed struct {
	header          message.Header
	plain, html     *string
	attachmentCount int
	attachments     []attachment
}

var wordDecoder = mime.WordDecoder{CharsetReader: message.CharsetReader}

func decodeHeader(v string) string {
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		v = d
	}
	return untrusted.Text(v, MaxHeaderValue)
}

// last returns the last decoded value of header k, or nil.
func (p *parsed) last(k string) any {
	var out *string
	fs := p.header.FieldsByKey(k)
	for fs.Next() {
		v := decodeHeader(fs.Value())
		out = &v
	}
	if out == nil {
		return nil
	}
	return out
}

// all returns every decoded value of header k, or nil.
func (p *parsed) all(k string) any {
	var out []string
	fs := p.header.FieldsByKey(k)
	for fs.Next() {
		out = append(out, decodeHeader(fs.Value()))
	}
	if out == nil {
		return nil
	}
	return out
}

// parse walks raw's MIME tree (at most MaxParts parts): the first text/plain
// and text/html inline parts are the bodies, the rest with a file name or an
// attachment disposition are attachments. A malformed message yields what
// could be read.
func parse(raw []byte, keepAttachments bool) *parsed {
	p := &parsed{}
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		return p
	}
	p.header = e.Header
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return p
	}
	mr := mail.NewReader(e)
	for n := 0; n < MaxParts; n++ {
		part, err := mr.NextPart()
		if err != nil {
			if errors.Is(err, io.EOF) || part == nil {
				break
			}
			continue
		}
		switch h := part.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := h.ContentType()
			_, ctParams, _ := h.ContentType()
			_, dispParams, _ := h.Header.ContentDisposition()
			if ctParams["name"] != "" || dispParams["filename"] != "" {
				p.attach(h.Header, part.Body, keepAttachments)
				continue
			}
			switch {
			case ct == "text/plain" && p.plain == nil:
				s := readText(part.Body)
				p.plain = &s
			case ct == "text/html" && p.html == nil:
				s := readText(part.Body)
				p.html = &s
			case ct == "text/plain" || ct == "text/html" || ct == "":
				_, _ = io.Copy(io.Discard, part.Body)
			default:
				p.attach(h.Header, part.Body, keepAttachments)
			}
		case *mail.AttachmentHeader:
			p.attach(h.Header, part.Body, keepAttachments)
		}
	}
	return p
}

func readText(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func (p *parsed) attach(h message.Header, body io.Reader, keep bool) {
	p.attachmentCount++
	if !keep {
		_, _ = io.Copy(io.Discard, body)
		return
	}
	data, _ := io.ReadAll(body)
	mt, params, _ := h.ContentType()
	name := params["name"]
	if _, dp, err := h.ContentDisposition(); err == nil && dp["filename"] != "" {
		name = dp["filename"]
	}
	p.attachments = append(p.attachments, attachment{filename: untrusted.Text(decodeHeader(name), 1024),
		contentType: mt, fullType: untrusted.Text(h.Get("Content-Type"), MaxHeaderValue), data: data})
}

// encode64 is Base64 in lines of 60 characters, each ending in a line feed,
// as Ruby's Base64.encode64 writes it.
func encode64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var buf strings.Builder
	buf.Grow(len(s) + len(s)/60 + 1)
	for len(s) > 60 {
		buf.WriteString(s[:60])
		buf.WriteByte('\n')
		s = s[60:]
	}
	if s != "" {
		buf.WriteString(s)
		buf.WriteByte('\n')
	}
	return buf.String()
}

// formData encodes fields as application/x-www-form-urlencoded, as Ruby's
// URI.encode_www_form does for a flat hash: nil is a bare key, a list
// repeats its key, booleans are true/false; attachments are flattened to
// attachments[i][filename|content_type|size|data].
func formData(fields []field, atts []attachment) []byte {
	var buf bytes.Buffer
	add := func(k string, v *string) {
		if buf.Len() > 0 {
			buf.WriteByte('&')
		}
		buf.WriteString(url.QueryEscape(k))
		if v != nil {
			buf.WriteByte('=')
			buf.WriteString(url.QueryEscape(*v))
		}
	}
	str := func(s string) *string { return &s }
	for _, f := range fields {
		switch v := f.val.(type) {
		case nil:
			if f.key == "attachments" {
				for i, a := range atts {
					pre := "attachments[" + strconv.Itoa(i) + "]"
					add(pre+"[filename]", str(a.filename))
					add(pre+"[content_type]", str(a.fullType))
					add(pre+"[size]", str(strconv.Itoa(len(a.data))))
					add(pre+"[data]", str(encode64(a.data)))
				}
				continue
			}
			add(f.key, nil)
		case *string:
			add(f.key, v)
		case string:
			add(f.key, str(v))
		case []string:
			for _, s := range v {
				add(f.key, str(s))
			}
		case bool:
			add(f.key, str(strconv.FormatBool(v)))
		case int:
			add(f.key, str(strconv.Itoa(v)))
		case int64:
			add(f.key, str(strconv.FormatInt(v, 10)))
		case float64:
			add(f.key, str(strconv.FormatFloat(v, 'f', -1, 64)))
		}
	}
	return buf.Bytes()
}

// replyRules find where quoted replies start in a plain body; everything
// from the match to the end is the replies.
var replyRules = []*regexp.Regexp{
	regexp.MustCompile(`(?m)^-{2,10} $`),
	regexp.MustCompile(`(?mi)^-+\s*Original Message\s*-+`),
	regexp.MustCompile(`(?m)^From: .*\n(?:.*\n){0,3}?(?:Sent|Date): `),
	regexp.MustCompile(`(?m)^-+Ursprüngliche Nachricht-+`),
	regexp.MustCompile(`(?m)^_{18,}`),
	regexp.MustCompile(`(?m)^On [^\n]{0,300}(?:\n[^\n]{0,300})?wrote:\s*$`),
	regexp.MustCompile(`(?m)^Sent from my `),
	regexp.MustCompile(`(?m)^=+ Please reply above this line =+`),
}

// StripReplies splits a plain body into the new text and the quoted replies
// (nil when none), as Postal's strip_replies does for its line rules.
func StripReplies(body string) (string, *string) {
	body = strings.ReplaceAll(body, "\r", "")
	cut := -1
	for _, re := range replyRules {
		if loc := re.FindStringIndex(body); loc != nil && (cut < 0 || loc[0] < cut) {
			cut = loc[0]
		}
	}
	if cut < 0 {
		return strings.TrimSpace(body), nil
	}
	replies := strings.TrimSpace(body[cut:])
	out := strings.TrimSpace(body[:cut])
	if replies == "" {
		return out, nil
	}
	return out, &replies
}
