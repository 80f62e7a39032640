// Package tracking rewrites an outgoing message for open and click tracking,
// as Postal's message parser does: links in text/plain and text/html parts
// point at the track host, and HTML parts get an open pixel before </body>.
//
// Contract: values in, values out. The package never touches the store or
// the network; link tokens come from the caller (Rewrite takes a map from
// URL to token, and URLs lists the URLs a message would need), so the
// caller decides how tokens are made and kept. The same input, options and
// tokens always give the same output, byte for byte: a retry that re-reads
// the stored tokens sends exactly what the first attempt sent.
//
// Every function runs in time linear in the message's size and never
// fails: a message or part it cannot read (an unknown charset, a bad
// transfer encoding, nesting deeper than MaxDepth, more than MaxParts
// parts, a message over MaxSize) is left as it is.
//
// MIME walk (Postal's): a single-part text/plain or text/html message, or
// the parts of a top-level multipart of any subtype, entering nested
// multiparts only when they are multipart/alternative or
// multipart/related. Every text/plain or text/html part met is rewritten,
// attachments included. A rewritten part is re-encoded as UTF-8
// quoted-printable; parts that do not change keep their bytes.
package tracking

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"html"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"

	"github.com/postalgo/postal/daemon/mailheader"
)

// Limits on what is walked; beyond them the message (or the part) is left
// untouched.
const (
	// MaxSize is the largest message rewritten.
	MaxSize = 32 << 20
	// MaxDepth is the deepest multipart nesting entered.
	MaxDepth = 8
	// MaxParts is the most MIME parts walked in one message.
	MaxParts = 200
	// MaxLinks is the most distinct URLs tracked in one message; further
	// links are left as they are.
	MaxLinks = 1000
	// MaxURL is the longest URL tracked (bytes).
	MaxURL = 8192
)

// Options describe one message's tracking.
type Options struct {
	// Scheme is "https" (track domain with SSL) or "http".
	Scheme string
	// Host is the track host, e.g. click.example.com.
	Host string
	// ServerToken and MessageToken name the server and the message in
	// pixel and link URLs.
	ServerToken, MessageToken string
	// TrackClicks rewrites links; TrackLoads adds the open pixel.
	TrackClicks, TrackLoads bool
	// Excluded lists hosts (with ":port" when the URL has one) whose
	// links are not tracked; matched exactly and case-sensitively.
	Excluded []string
}

// Result says what a rewrite did.
type Result struct {
	// Links counts rewritten link occurrences; Images counts HTML parts
	// given a pixel.
	Links, Images int
	// URLs lists the distinct URLs the message's links point at, in
	// order of first appearance, at most MaxLinks: the ones the caller
	// must hold tokens for.
	URLs []string
	// Missing counts link occurrences left alone because tokens had no
	// entry for their URL.
	Missing int
}

// URLHash is the SHA-1 (hex) of a URL, as Postal stores it in links.hash.
func URLHash(url string) string {
	h := sha1.Sum([]byte(url))
	return hex.EncodeToString(h[:])
}

// SkipRequested reports whether msg's header asks for no tracking with an
// "X-AMP: skip" field (value compared case-insensitively). Postal documents
// this but never honours it (postal#315); we do.
func SkipRequested(msg []byte) bool {
	for _, v := range mailheader.Parse(msg).Values("X-AMP") {
		if strings.EqualFold(strings.TrimSpace(v), "skip") {
			return true
		}
	}
	return false
}

// StripSkip returns msg without its X-AMP fields, or msg itself when it has
// none. The header is an instruction to us, not to recipients.
func StripSkip(msg []byte) []byte { return mailheader.Parse(msg).Without("X-AMP") }

// URLs returns the distinct URLs whose links Rewrite would track in msg.
func URLs(msg []byte, o Options) []string { return Collect(msg, o).URLs }

// Collect returns what Rewrite would do given a token for every URL: the
// URLs to hold tokens for, and the counts of links and pixels.
func Collect(msg []byte, o Options) Result {
	_, r := rewrite(msg, o, nil, true)
	return r
}

// Rewrite returns msg with links and pixels rewritten under o, taking link
// tokens from tokens (URL -> token; a URL without one is left alone and
// counted in Missing). When nothing changes it returns msg itself.
func Rewrite(msg []byte, o Options, tokens map[string]string) ([]byte, Result) {
	return rewrite(msg, o, tokens, false)
}

func rewrite(msg []byte, o Options, tokens map[string]string, collect bool) ([]byte, Result) {
	w := &walker{o: o, tokens: tokens, collect: collect, seen: map[string]bool{}}
	if len(msg) > MaxSize || (!o.TrackClicks && !o.TrackLoads) {
		return msg, Result{}
	}
	out, ok := w.entity(msg, 0)
	if !ok || collect {
		return msg, w.res
	}
	return out, w.res
}

type walker struct {
	o       Options
	tokens  map[string]string
	collect bool
	seen    map[string]bool
	parts   int
	res     Result
}

// entity rewrites one MIME entity (header and body); ok is false when
// nothing changed.
func (w *walker) entity(e []byte, depth int) ([]byte, bool) {
	w.parts++
	if w.parts > MaxParts {
		return e, false
	}
	h := mailheader.Parse(e)
	ct := h.First("Content-Type")
	mt, params := "text/plain", map[string]string{}
	if ct != "" {
		var err error
		mt, params, err = mime.ParseMediaType(ct)
		if err != nil {
			return e, false
		}
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if depth > 0 && mt != "multipart/alternative" && mt != "multipart/related" {
			return e, false
		}
		if depth >= MaxDepth {
			return e, false
		}
		b := params["boundary"]
		if b == "" || len(b) > 200 {
			return e, false
		}
		body, ok := w.multipart(e[h.BodyStart():], b, depth)
		if !ok {
			return e, false
		}
		out := make([]byte, 0, h.BodyStart()+len(body))
		out = append(out, e[:h.BodyStart()]...)
		return append(out, body...), true
	case mt == "text/plain" || mt == "text/html":
		return w.text(e, h, mt, params)
	}
	return e, false
}

// multipart rewrites the parts of a multipart body with boundary b.
func (w *walker) multipart(body []byte, b string, depth int) ([]byte, bool) {
	delim := []byte("--" + b)
	// Offsets of each delimiter line's start and of the line after it.
	type cut struct{ start, next int }
	var cuts []cut
	closed := false
	for pos := 0; pos < len(body); {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			break
		}
		i += pos
		atLine := i == 0 || body[i-1] == '\n'
		end := i + len(delim)
		final := bytes.HasPrefix(body[end:], []byte("--"))
		if !atLine || (!final && !onlySpaceToEOL(body[end:])) {
			pos = end
			continue
		}
		nl := bytes.IndexByte(body[end:], '\n')
		next := len(body)
		if nl >= 0 {
			next = end + nl + 1
		}
		cuts = append(cuts, cut{i, next})
		if final {
			closed = true
			break
		}
		if len(cuts) > MaxParts {
			return nil, false
		}
		pos = next
	}
	if len(cuts) < 2 || !closed {
		return nil, false
	}
	var out bytes.Buffer
	out.Grow(len(body) + 1024)
	changed := false
	out.Write(body[:cuts[0].next])
	for k := 0; k+1 < len(cuts); k++ {
		partEnd := cuts[k+1].start
		// The line break before a delimiter belongs to the delimiter.
		if partEnd > cuts[k].next && body[partEnd-1] == '\n' {
			partEnd--
			if partEnd > cuts[k].next && body[partEnd-1] == '\r' {
				partEnd--
			}
		}
		part := body[cuts[k].next:partEnd]
		np, ok := w.entity(part, depth+1)
		if ok {
			changed = true
			out.Write(np)
		} else {
			out.Write(part)
		}
		out.Write(body[partEnd:cuts[k+1].next])
	}
	out.Write(body[cuts[len(cuts)-1].next:])
	return out.Bytes(), changed
}

// text rewrites a text/plain or text/html part.
func (w *walker) text(e []byte, h mailheader.Header, mt string, params map[string]string) ([]byte, bool) {
	raw := e[h.BodyStart():]
	var decoded []byte
	switch cte := strings.ToLower(h.First("Content-Transfer-Encoding")); cte {
	case "", "7bit", "8bit", "binary":
		decoded = raw
	case "quoted-printable":
		decoded = decodeQP(raw)
	case "base64":
		d, err := decodeBase64(raw)
		if err != nil {
			return e, false
		}
		decoded = d
	default:
		return e, false
	}
	switch cs := strings.ToLower(params["charset"]); cs {
	case "", "utf-8", "utf8", "us-ascii":
		if !utf8.Valid(decoded) {
			// Mislabelled text: leave it as it is rather than guess.
			return e, false
		}
	default:
		r, err := charset.Reader(cs, bytes.NewReader(decoded))
		if err != nil {
			return e, false
		}
		d, err := io.ReadAll(r)
		if err != nil || !utf8.Valid(d) {
			return e, false
		}
		decoded = d
	}
	var out []byte
	var changed bool
	if mt == "text/html" {
		out, changed = w.html(decoded)
	} else {
		out, changed = w.plain(decoded)
	}
	if !changed || w.collect {
		return e, changed
	}
	// Re-render: the old header without its type and encoding, then ours.
	params["charset"] = "utf-8"
	ctype := mime.FormatMediaType(mt, params)
	if ctype == "" {
		return e, false
	}
	var b bytes.Buffer
	b.Grow(len(e) + len(out)/3 + 128)
	hdr := mailheader.Parse(e[:h.End()])
	b.Write(mailheader.Parse(hdr.Without("Content-Type")).Without("Content-Transfer-Encoding"))
	b.WriteString("Content-Type: ")
	b.WriteString(ctype)
	b.WriteString("\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write(out)
	qp.Close()
	return b.Bytes(), true
}

// decodeQP decodes quoted-printable leniently, in one pass: =XX becomes
// its byte, "=" before a line break joins the lines, white space before a
// line break is dropped (RFC 2045 6.7 rule 3), and a malformed "=" is kept
// as it is.
func decodeQP(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	lineStart := 0 // in out: where trailing white space may be dropped
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '=' && softBreak(raw[i+1:]) >= 0:
			i += softBreak(raw[i+1:])
			lineStart = len(out)
		case c == '=' && i+2 < len(raw) && unhex(raw[i+1]) >= 0 && unhex(raw[i+2]) >= 0:
			out = append(out, byte(unhex(raw[i+1])<<4|unhex(raw[i+2])))
			i += 2
			lineStart = len(out)
		case c == '\n':
			hadCR := len(out) > lineStart && out[len(out)-1] == '\r'
			for len(out) > lineStart && isQPSpace(out[len(out)-1]) {
				out = out[:len(out)-1]
			}
			if hadCR {
				out = append(out, '\r')
			}
			out = append(out, '\n')
			lineStart = len(out)
		default:
			out = append(out, c)
		}
	}
	for len(out) > lineStart && isQPSpace(out[len(out)-1]) {
		out = out[:len(out)-1]
	}
	return out
}

// isQPSpace is the white space dropped at the end of a line.
func isQPSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// softBreak returns how many bytes after an "=" belong to a soft line
// break (spaces and tabs, then a line break or the end), or -1. Each byte
// is looked at by at most one "=": the scan stops at the first other byte.
func softBreak(s []byte) int {
	j := 0
	for j < len(s) && isQPSpace(s[j]) {
		j++
	}
	switch {
	case j == len(s):
		return j
	case s[j] == '\n':
		return j + 1
	}
	return -1
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// onlySpaceToEOL reports whether s holds only spaces and tabs before its
// first line break (RFC 2046 allows them after a delimiter). It looks at no
// more than 80 bytes.
func onlySpaceToEOL(s []byte) bool {
	for i := 0; i < len(s) && i < 80; i++ {
		switch s[i] {
		case ' ', '\t':
		case '\r', '\n':
			return true
		default:
			return false
		}
	}
	return len(s) < 80
}

func decodeBase64(raw []byte) ([]byte, error) {
	clean := make([]byte, 0, len(raw))
	for _, c := range raw {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			clean = append(clean, c)
		}
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	return out[:n], err
}

// pixel is Postal's open pixel markup, with the URL between its two halves.
const (
	pixelStart = "<p class='ampimg' style='display:none;visibility:none;margin:0;padding:0;line-height:0;'><img src='"
	pixelEnd   = "' alt=''></p>"
)

// html rewrites href links and adds the pixel.
func (w *walker) html(s []byte) ([]byte, bool) {
	var b bytes.Buffer
	b.Grow(len(s) + 512)
	changed := false
	last := 0
	if w.o.TrackClicks {
		for pos := 0; pos < len(s); {
			i := bytes.Index(s[pos:], []byte("href="))
			if i < 0 {
				break
			}
			i += pos
			q := i + 5
			if q >= len(s) || (s[q] != '"' && s[q] != '\'') {
				pos = q
				continue
			}
			start := q + 1
			end, host := matchURL(s, start)
			if end < 0 {
				pos = start
				continue
			}
			// Any later href=' lies at or after end-5: a quote ends the run.
			pos = max(start, end-5)
			if end >= len(s) || (s[end] != '"' && s[end] != '\'') {
				continue
			}
			url := html.UnescapeString(string(s[start:end]))
			tok, ok := w.token(url, s[host[0]:host[1]])
			if !ok {
				continue
			}
			b.Write(s[last:i])
			b.WriteString("href='")
			w.writeLink(&b, tok)
			b.WriteByte('\'')
			last = end + 1
			pos = last
			changed = true
		}
	}
	b.Write(s[last:])
	out := b.Bytes()
	if w.o.TrackClicks {
		if n, ok := dropNotrack(out); ok {
			out, changed = n, true
		}
	}
	if w.o.TrackLoads {
		out = w.addPixel(out)
		changed = true
		w.res.Images++
	}
	return out, changed
}

func (w *walker) addPixel(s []byte) []byte {
	var px bytes.Buffer
	px.WriteString(pixelStart)
	px.WriteString(w.o.Scheme)
	px.WriteString("://")
	px.WriteString(w.o.Host)
	px.WriteString("/img/")
	px.WriteString(w.o.ServerToken)
	px.WriteByte('/')
	px.WriteString(w.o.MessageToken)
	px.WriteString(pixelEnd)
	if !bytes.Contains(s, []byte("</body>")) {
		return append(s, px.Bytes()...)
	}
	return bytes.ReplaceAll(s, []byte("</body>"), append(px.Bytes(), "</body>"...))
}

// plain rewrites URLs followed by white space or the end of a line.
func (w *walker) plain(s []byte) ([]byte, bool) {
	var b bytes.Buffer
	changed := false
	last := 0
	if w.o.TrackClicks {
		for pos := 0; pos < len(s); {
			i := bytes.Index(s[pos:], []byte("http"))
			if i < 0 {
				break
			}
			i += pos
			end, host := matchURL(s, i)
			if end < 0 {
				pos = i + 4
				continue
			}
			// Every match starting inside [i, end) ends at end too.
			pos = end
			if end < len(s) && !isSpace(s[end]) {
				continue
			}
			url := strings.TrimRightFunc(string(s[i:end]), func(r rune) bool { return !isWord(r) })
			tok, ok := w.token(url, s[host[0]:host[1]])
			if !ok {
				continue
			}
			if b.Len() == 0 {
				b.Grow(len(s) + 256)
			}
			b.Write(s[last:i])
			w.writeLink(&b, tok)
			last = end
			changed = true
		}
	}
	if !changed {
		b.Reset()
		if n, ok := dropNotrack(s); ok && w.o.TrackClicks {
			return n, true
		}
		return s, false
	}
	b.Write(s[last:])
	out := b.Bytes()
	if n, ok := dropNotrack(out); ok {
		out = n
	}
	return out, true
}

func (w *walker) writeLink(b *bytes.Buffer, tok string) {
	b.WriteString(w.o.Scheme)
	b.WriteString("://")
	b.WriteString(w.o.Host)
	b.WriteByte('/')
	b.WriteString(w.o.ServerToken)
	b.WriteByte('/')
	b.WriteString(tok)
}

// token returns the token for url, or false when the link stays as it is
// (excluded host, too long, over MaxLinks, no token, or collecting).
func (w *walker) token(url string, host []byte) (string, bool) {
	if len(url) > MaxURL {
		return "", false
	}
	for _, x := range w.o.Excluded {
		if x == string(host) {
			return "", false
		}
	}
	if !w.seen[url] {
		if len(w.res.URLs) >= MaxLinks {
			return "", false
		}
		w.seen[url] = true
		w.res.URLs = append(w.res.URLs, url)
	}
	if w.collect {
		w.res.Links++
		return "", true
	}
	tok, ok := w.tokens[url]
	if !ok || tok == "" {
		w.res.Missing++
		return "", false
	}
	w.res.Links++
	return tok, true
}

// matchURL matches Postal's URL pattern at s[i:]: http or https, "://", a
// host of [A-Za-z0-9.:-]+, then path characters. It returns the end of the
// longest match and the host's range, or -1.
func matchURL(s []byte, i int) (int, [2]int) {
	j := i
	if !bytes.HasPrefix(s[j:], []byte("http")) {
		return -1, [2]int{}
	}
	j += 4
	if j < len(s) && s[j] == 's' {
		j++
	}
	if !bytes.HasPrefix(s[j:], []byte("://")) {
		return -1, [2]int{}
	}
	j += 3
	hs := j
	for j < len(s) && isHostChar(s[j]) {
		j++
	}
	if j == hs {
		return -1, [2]int{}
	}
	he := j
	for j < len(s) && isPathChar(s[j]) {
		j++
	}
	return j, [2]int{hs, he}
}

func isHostChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == ':' || c == '-'
}

func isPathChar(c byte) bool {
	if isHostChar(c) {
		return true
	}
	switch c {
	case '/', '+', '?', '&', '_', '%', '=', '~', ';', '(', ')', '[', ']', '#':
		return true
	}
	return false
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'
}

func isWord(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_'
}

// dropNotrack removes "+notrack" from http+notrack:// and https+notrack://.
func dropNotrack(s []byte) ([]byte, bool) {
	if !bytes.Contains(s, []byte("+notrack://")) {
		return s, false
	}
	var b bytes.Buffer
	b.Grow(len(s))
	changed := false
	for len(s) > 0 {
		i := bytes.Index(s, []byte("+notrack://"))
		if i < 0 {
			break
		}
		if bytes.HasSuffix(s[:i], []byte("http")) || bytes.HasSuffix(s[:i], []byte("https")) {
			b.Write(s[:i])
			changed = true
		} else {
			b.Write(s[:i+len("+notrack")])
		}
		s = s[i+len("+notrack"):]
	}
	b.Write(s)
	return b.Bytes(), changed
}
