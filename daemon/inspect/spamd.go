package inspect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maxSpamdReply caps the bytes read from spamd.
const maxSpamdReply = 256 << 10

// Spamd asks SpamAssassin's spamd for a REPORT over TCP (SPAMC/1.2), as
// Postal does.
type Spamd struct {
	// Addr is host:port (Postal's default port 783).
	Addr string
	// Timeout bounds the whole exchange (Postal: 15 s).
	Timeout time.Duration
}

// outgoingIgnored are spamd rules about the receiving hop that say nothing
// of mail a server sends; Postal ignores them for outgoing mail.
var (
	outgoingIgnored = map[string]bool{"NO_RECEIVED": true, "NO_RELAYS": true, "ALL_TRUSTED": true,
		"FREEMAIL_FORGED_REPLYTO": true, "RDNS_DYNAMIC": true, "CK_HELO_GENERIC": true}
	outgoingIgnoredRE = regexp.MustCompile(`^SPF_|^HELO_|DKIM_|^RCVD_IN_`)
)

// Check sends raw to spamd and parses its report. For outgoing mail the
// rules Postal ignores are left out of the checks and of the score.
func (s *Spamd) Check(ctx context.Context, env Envelope, raw []byte) (SpamResult, error) {
	reply, err := exchange(ctx, s.Addr, s.Timeout, func(w io.Writer) error {
		if _, err := fmt.Fprintf(w, "REPORT SPAMC/1.2\r\nContent-length: %d\r\n\r\n", len(raw)); err != nil {
			return err
		}
		_, err := w.Write(raw)
		return err
	}, maxSpamdReply, 0)
	if err != nil {
		return SpamResult{}, unavailable("spamd", err)
	}
	r, err := ParseSpamdReply(reply)
	if err != nil {
		return SpamResult{}, unavailable("spamd", err)
	}
	if env.Outgoing {
		kept := r.Checks[:0]
		for _, c := range r.Checks {
			if outgoingIgnored[c.Code] || outgoingIgnoredRE.MatchString(c.Code) {
				r.Score -= c.Score
				continue
			}
			kept = append(kept, c)
		}
		r.Checks = kept
	}
	return r, nil
}

// exchange dials addr, writes the request with send (the write side is then
// closed), and reads the reply until EOF, a stop byte (when stop != 0) or
// max bytes. The whole exchange ends at timeout or when ctx does. A reply
// read after a failed write is returned with the write's error only when it
// is empty (clamd answers a refusal, then closes).
func exchange(ctx context.Context, addr string, timeout time.Duration, send func(io.Writer) error, max int, stop byte) ([]byte, error) {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	dl := deadline(ctx, timeout)
	d := net.Dialer{Deadline: dl}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stopCancel := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stopCancel()
	if err := conn.SetDeadline(dl); err != nil {
		return nil, err
	}
	werr := send(conn)
	if werr == nil {
		if tc, ok := conn.(*net.TCPConn); ok {
			werr = tc.CloseWrite()
		}
	}
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 4096)
	for {
		n, rerr := conn.Read(chunk)
		if n > 0 {
			got := chunk[:n]
			if stop != 0 {
				if i := bytes.IndexByte(got, stop); i >= 0 {
					got, rerr = got[:i], io.EOF
				}
			}
			if len(buf)+len(got) > max {
				return nil, fmt.Errorf("reply longer than %d bytes", max)
			}
			buf = append(buf, got...)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if werr != nil && len(buf) > 0 {
				return buf, nil
			}
			if ne, ok := rerr.(net.Error); ok && ne.Timeout() {
				rerr = fmt.Errorf("no answer within %s: %w", timeout, rerr)
			}
			return nil, errors.Join(werr, rerr)
		}
	}
	if werr != nil && len(buf) == 0 {
		return nil, werr
	}
	return buf, nil
}

// ParseSpamdReply parses spamd's answer to REPORT: the status line
// ("SPAMD/1.1 0 EX_OK"), the headers (the score from "Spam: True ; 5.2 /
// 5.0") and the report, whose rule table follows its last line of dashes:
// "<score> <RULE> <description>", a description continued on indented
// lines. A status other than 0 or a missing Spam header is an error.
func ParseSpamdReply(b []byte) (SpamResult, error) {
	var r SpamResult
	line, rest, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.HasPrefix(f[0], "SPAMD/") {
		return r, fmt.Errorf("spamd reply: bad status line %q", clip(line))
	}
	if f[1] != "0" {
		return r, fmt.Errorf("spamd reply: status %q", clip(line))
	}
	scored := false
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(string(bytes.TrimSpace(name)), "Spam") {
			continue
		}
		// "True ; 5.2 / 5.0"
		_, sc, ok := bytes.Cut(val, []byte(";"))
		if !ok {
			return r, fmt.Errorf("spamd reply: bad Spam header %q", clip(line))
		}
		score, _, _ := bytes.Cut(sc, []byte("/"))
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(score)), 64)
		if err != nil || !finite(v) {
			return r, fmt.Errorf("spamd reply: bad score in %q", clip(line))
		}
		r.Score, scored = v, true
	}
	if !scored {
		return r, errors.New("spamd reply: no Spam header")
	}
	// The rule table follows the last line made of dashes and spaces.
	table := rest
	for body := rest; len(body) > 0; {
		var l []byte
		l, body, _ = bytes.Cut(body, []byte("\n"))
		if t := bytes.TrimSpace(l); len(t) >= 4 && bytes.HasPrefix(t, []byte("----")) && len(bytes.Trim(t, "- ")) == 0 {
			table = body
		}
	}
	if len(table) == len(rest) {
		return r, nil // no table: no checks
	}
	var checks []Check
	var desc strings.Builder
	flush := func() {
		if n := len(checks); n > 0 {
			checks[n-1].Description = newCheck("", 0, desc.String()).Description
		}
		desc.Reset()
	}
	for len(table) > 0 {
		var l []byte
		l, table, _ = bytes.Cut(table, []byte("\n"))
		s := strings.TrimRight(string(l), "\r \t")
		if strings.TrimSpace(s) == "" {
			continue
		}
		f := strings.Fields(s)
		if len(f) >= 2 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil && finite(v) {
				flush()
				_, after, _ := strings.Cut(strings.TrimLeft(s, " \t"), f[0])
				after = strings.TrimLeft(after, " \t")
				_, d, _ := strings.Cut(after, f[1])
				checks = append(checks, newCheck(f[1], v, ""))
				appendDesc(&desc, d)
				continue
			}
		}
		if len(checks) > 0 && (s[0] == ' ' || s[0] == '\t') {
			appendDesc(&desc, s)
		}
	}
	flush()
	r.Checks = top(checks)
	return r, nil
}

// appendDesc adds a description's words, up to the cap.
func appendDesc(b *strings.Builder, s string) {
	s = strings.TrimSpace(s)
	if s == "" || b.Len() >= MaxDescriptionLen {
		return
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if room := MaxDescriptionLen + 4 - b.Len(); len(s) > room {
		s = s[:room]
	}
	b.WriteString(s)
}

// clip is a short, printable excerpt of foreign bytes for an error.
func clip(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return strings.ToValidUTF8(string(b), "?")
}
