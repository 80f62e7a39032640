package dsn

import (
	"bytes"
	"regexp"
	"strings"

	"github.com/postalgo/postal/daemon/untrusted"
)

// Formats a Report may come in (Report.Format).
const (
	FormatRFC3464  = "rfc3464"
	FormatQmail    = "qmail"
	FormatExim     = "exim"
	FormatPostfix  = "postfix"
	FormatExchange = "exchange"
	FormatGmail    = "gmail"
	FormatYahoo    = "yahoo"
)

// Bounds on the plain-text reading of a bounce.
const (
	// maxTextBytes is how much of a bounce's human-readable text is read.
	maxTextBytes = 64 << 10
	// maxTextRecipients is the most recipients taken from a plain-text
	// bounce.
	maxTextRecipients = 100
	// maxEmail is the longest address a plain-text bounce may name (RFC
	// 5321 path limit).
	maxEmail = 254
)

// textFormats are the plain-text bounces Parse recognises, by a phrase
// (lower case) their MTA always writes, in the order they are tried.
var textFormats = []struct{ name, phrase string }{
	{FormatQmail, "this is the qmail-send program"},
	{FormatExim, "this message was created automatically by mail delivery software"},
	{FormatPostfix, "this is the mail system at host"},
	{FormatExchange, "delivery has failed to these recipients"},
	{FormatGmail, "address not found"},
	{FormatGmail, "your message wasn't delivered to"},
	{FormatYahoo, "we were unable to deliver your message to the following address"},
}

// temporaryPhrases mark a plain-text report as a delay rather than a
// failure, unless it also says the failure is permanent.
var temporaryPhrases = []string{
	"this is a temporary error", "will continue trying", "still being retried", "this is a warning only",
	"delivery is delayed", "delivery has been delayed", "has not yet been delivered", "will retry",
}

var (
	// enhancedRE finds an RFC 3463 status code in text.
	enhancedRE = regexp.MustCompile(`(?:^|[^0-9.])([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:[^0-9.]|$)`)
	// basicRE finds an RFC 5321 reply code in text ("#550", "550-", "550:").
	basicRE = regexp.MustCompile(`(?:^|[^0-9.])([245][0-9][0-9])(?:[^0-9.]|$)`)
)

// parseText reads a bounce that has no delivery-status part from its
// human-readable text: the MTA is recognised by a phrase it always writes,
// then each failed recipient is read with the text that follows it up to
// the next recipient (its diagnostic). A line of dashes (or "Original
// message headers:") ends the report; the copy of the original message
// after it gives the returned header block when the MIME walk found none.
// It reports false when text is not a bounce it recognises. Linear in
// len(text), which the caller caps at maxTextBytes.
func parseText(text []byte, rep *Report) bool {
	lower := bytes.ReplaceAll(bytes.ToLower(text), []byte("\u2019"), []byte("'"))
	for _, f := range textFormats {
		if bytes.Contains(lower, []byte(f.phrase)) {
			rep.Format = f.name
			break
		}
	}
	if rep.Format == "" {
		return false
	}
	action := ActionFailed
	if !bytes.Contains(lower, []byte("permanent")) && !bytes.Contains(lower, []byte("given up")) {
		for _, p := range temporaryPhrases {
			if bytes.Contains(lower, []byte(p)) {
				action = ActionDelayed
				break
			}
		}
	}
	body := text
	byAddr := map[string]int{}
	var diags []*strings.Builder
	cur := -1
	var rest []byte
	for len(body) > 0 {
		line := body
		next := []byte(nil)
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, next = body[:i], body[i+1:]
		}
		body = next
		t := strings.TrimSpace(string(bytes.TrimRight(line, "\r")))
		if stopLine(t) {
			rest = body
			break
		}
		if addr, tail, ok := recipientLine(t); ok {
			key := strings.ToLower(addr)
			i, seen := byAddr[key]
			if !seen {
				if len(rep.Recipients) >= maxTextRecipients {
					cur = -1
					continue
				}
				i = len(rep.Recipients)
				byAddr[key] = i
				rep.Recipients = append(rep.Recipients, Recipient{Address: untrusted.Text(addr, maxAddress), Action: action})
				diags = append(diags, &strings.Builder{})
			}
			cur = i
			t = tail
		}
		if cur >= 0 && t != "" {
			d := diags[cur]
			if d.Len() < maxDiagnostic {
				if d.Len() > 0 {
					d.WriteByte(' ')
				}
				d.WriteString(t[:min(len(t), maxDiagnostic-d.Len())])
			}
		}
	}
	for i := range rep.Recipients {
		diag := diags[i].String()
		r := &rep.Recipients[i]
		if m := enhancedRE.FindStringSubmatch(diag); m != nil {
			r.Status = m[1]
		}
		if diag != "" {
			r.DiagnosticCode = untrusted.Text("smtp; "+diag, maxDiagnostic)
		}
	}
	if rep.OriginalHeaders == nil && len(rest) > 0 {
		_ = parseReturned(bytes.NewReader(skipToHeaders(rest)), rep)
		if len(rep.OriginalHeaders) == 0 || !bytes.Contains(rep.OriginalHeaders, []byte(":")) {
			rep.OriginalHeaders = nil
		}
	}
	return true
}

// stopLine reports whether t (trimmed) ends the human-readable report: a
// line of at least three dashes ("--- Below this line is a copy of the
// message.", "------ This is a copy of the message, including all the
// headers. ------", "----- Original message -----") or Exchange's
// "Original message headers:".
func stopLine(t string) bool {
	return strings.HasPrefix(t, "---") || strings.EqualFold(t, "Original message headers:")
}

// skipToHeaders drops what precedes the copied header block after a stop
// line: blank lines and a line that is not a header field (a second
// marker).
func skipToHeaders(b []byte) []byte {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		line := b
		if i >= 0 {
			line = b[:i]
		}
		t := bytes.TrimSpace(line)
		colon := bytes.IndexByte(t, ':')
		if len(t) > 0 && colon > 0 && !bytes.ContainsAny(t[:colon], " \t") {
			return b
		}
		if i < 0 {
			return nil
		}
		b = b[i+1:]
	}
	return nil
}

// recipientLine reports whether t (a trimmed line) names a failed
// recipient, returning the address and the rest of the line: "<addr>:"
// followed by text (qmail, Postfix, Yahoo), a line that is only an address
// (Exim, Exchange), or "... delivered to addr ..." (Gmail).
func recipientLine(t string) (addr, tail string, ok bool) {
	if strings.HasPrefix(t, "<") {
		if end := strings.Index(t, ">:"); end > 0 {
			if a := t[1:end]; isAddress(a) {
				return a, strings.TrimSpace(t[end+2:]), true
			}
		}
		if end := strings.IndexByte(t, '>'); end == len(t)-1 && isAddress(t[1:end]) {
			return t[1:end], "", true
		}
	}
	if a := strings.TrimSuffix(t, ":"); isAddress(a) {
		return a, "", true
	}
	if i := strings.Index(asciiLower(t), "delivered to "); i >= 0 {
		rest := t[i+len("delivered to "):]
		word := rest
		if j := strings.IndexAny(rest, " \t"); j >= 0 {
			word = rest[:j]
		}
		word = strings.TrimRight(strings.Trim(word, "<>"), ".,:;")
		word = strings.Trim(word, "<>")
		if isAddress(word) {
			return word, "", true
		}
	}
	return "", "", false
}

// isAddress reports whether s looks like one mailbox: one '@' with text on
// both sides, a dot in the domain, no white space, brackets, quotes or
// controls, at most maxEmail bytes.
func isAddress(s string) bool {
	if len(s) < 5 || len(s) > maxEmail {
		return false
	}
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || at == len(s)-1 {
		return false
	}
	if !strings.Contains(s[at+1:], ".") || strings.HasSuffix(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || strings.IndexByte(`<>()[]"',;:\`, c) >= 0 {
			return false
		}
	}
	return true
}

// asciiLower lowers ASCII letters only, so byte positions in the result are
// positions in s.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
