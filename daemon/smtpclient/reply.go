package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/untrusted"
)

// maxReplyLines bounds a multi-line reply so a hostile server cannot make the
// client buffer without limit; real EHLO replies have a few dozen lines.
const maxReplyLines = 256

// MaxReplyText is the most bytes of a server's reply text that reach a
// [Result], an [Error] or a [RcptError]: the text is made valid UTF-8 without
// control characters other than tab and the line feeds joining its lines
// (see package untrusted: bytes that are not UTF-8 are read as ISO-8859-1)
// and cut on a character boundary to this length.
const MaxReplyText = 2048

// errMalformedReply is wrapped by every reply syntax error.
var errMalformedReply = errors.New("malformed SMTP reply")

// reply is one server reply. enh and text are buffers reused from reply to
// reply on the same connection; copy them (string()) to keep them.
type reply struct {
	// code is the three-digit reply code (200-599).
	code int
	// enh is the enhanced status code of the first line ("5.1.1"), or empty.
	enh []byte
	// text is the reply text, lines joined by '\n', with the enhanced code
	// removed from every line that carried one.
	text []byte
}

// readReply reads one complete (possibly multi-line) reply from br into r.
// Lines may end in CRLF or LF and may not exceed br's buffer size. It returns
// io.EOF when the connection ended cleanly before the reply started,
// io.ErrUnexpectedEOF when it ended inside one, and an error wrapping
// errMalformedReply for a syntax violation.
func readReply(br *bufio.Reader, r *reply) error {
	r.code = 0
	r.enh = r.enh[:0]
	r.text = r.text[:0]
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return fmt.Errorf("%w: more than %d lines", errMalformedReply, maxReplyLines)
		}
		line, err := br.ReadSlice('\n')
		if err != nil {
			switch {
			case errors.Is(err, bufio.ErrBufferFull):
				return fmt.Errorf("%w: line longer than %d bytes", errMalformedReply, br.Size())
			case errors.Is(err, io.EOF) && (n > 0 || len(line) > 0):
				return io.ErrUnexpectedEOF
			}
			return err
		}
		line = trimEOL(line)
		code, last, text, ok := parseReplyLine(line)
		if !ok {
			return fmt.Errorf("%w: %q", errMalformedReply, truncate(line, 64))
		}
		if n == 0 {
			r.code = code
		} else {
			if code != r.code {
				return fmt.Errorf("%w: code %d inside a %d reply", errMalformedReply, code, r.code)
			}
			r.text = append(r.text, '\n')
		}
		if enh, rest, ok := splitEnhanced(code, text); ok {
			if n == 0 {
				r.enh = append(r.enh, enh...)
			}
			text = rest
		}
		r.text = append(r.text, text...)
		if last {
			return nil
		}
	}
}

// message returns the reply text as it may leave the package: valid UTF-8,
// free of control characters but tab and line feed, at most MaxReplyText
// bytes.
func (r *reply) message() string {
	t := r.text
	if len(t) > MaxReplyText {
		// Every byte kept makes at least one byte of output, so no more
		// than MaxReplyText bytes are needed; cut before a character that
		// would straddle the cut, so it is not read as Latin-1.
		n := MaxReplyText
		for i := 1; i < utf8.UTFMax && !utf8.RuneStart(t[n]); i++ {
			n--
		}
		t = t[:n]
	}
	return untrusted.Lines(string(t), MaxReplyText)
}

// trimEOL removes a trailing LF and the CR before it, if any.
func trimEOL(line []byte) []byte {
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

// parseReplyLine splits "250-text", "250 text" or "250" into its code, whether
// it is the last line, and its text.
func parseReplyLine(line []byte) (code int, last bool, text []byte, ok bool) {
	if len(line) < 3 || line[0] < '2' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) {
		return 0, false, nil, false
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, true, nil, true
	}
	switch line[3] {
	case ' ':
		return code, true, line[4:], true
	case '-':
		return code, false, line[4:], true
	}
	return 0, false, nil, false
}

// splitEnhanced recognises an RFC 3463 status code ("class.subject.detail",
// class matching the reply's first digit, subject and detail of 1-3 digits)
// at the start of text, followed by a space or the end of the text.
func splitEnhanced(code int, text []byte) (enh, rest []byte, ok bool) {
	class := byte('0' + code/100)
	if len(text) < 5 || text[0] != class || text[1] != '.' || (class != '2' && class != '4' && class != '5') {
		return nil, nil, false
	}
	i := 2
	for part := 0; part < 2; part++ {
		start := i
		for i < len(text) && isDigit(text[i]) && i-start < 3 {
			i++
		}
		if i == start {
			return nil, nil, false
		}
		if part == 0 {
			if i >= len(text) || text[i] != '.' {
				return nil, nil, false
			}
			i++
		}
	}
	switch {
	case i == len(text):
		return text[:i], text[i:], true
	case text[i] == ' ':
		return text[:i], text[i+1:], true
	}
	return nil, nil, false
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// truncate shortens b for use in an error message.
func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// extensions are the EHLO keywords this client acts on.
type extensions struct {
	pipelining bool
	startTLS   bool
	eightBit   bool
	smtpUTF8   bool
	// size is the advertised SIZE limit in bytes; 0 means none.
	size int64
	// sizeKeyword reports that SIZE was advertised, with or without a limit.
	sizeKeyword bool
}

// parseExtensions reads the keywords of an EHLO reply text (the first line is
// the server's greeting and is skipped). Unknown keywords are ignored.
func parseExtensions(text []byte) extensions {
	var e extensions
	first := true
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		if first {
			first = false
			continue
		}
		kw, arg, _ := bytes.Cut(bytes.TrimSpace(line), []byte{' '})
		switch {
		case bytes.EqualFold(kw, []byte("PIPELINING")):
			e.pipelining = true
		case bytes.EqualFold(kw, []byte("STARTTLS")):
			e.startTLS = true
		case bytes.EqualFold(kw, []byte("8BITMIME")):
			e.eightBit = true
		case bytes.EqualFold(kw, []byte("SMTPUTF8")):
			e.smtpUTF8 = true
		case bytes.EqualFold(kw, []byte("SIZE")):
			e.sizeKeyword = true
			if n, err := strconv.ParseInt(string(bytes.TrimSpace(arg)), 10, 64); err == nil && n > 0 {
				e.size = n
			}
		}
	}
	return e
}
