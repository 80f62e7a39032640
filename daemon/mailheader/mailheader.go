package mailheader

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"
)

// Field is one header field: the byte range of its lines (line ends
// included) in the message it was parsed from.
type Field struct {
	// Name is the field name as written, without the spaces or tabs that
	// may precede the colon.
	Name string
	// Start is the offset of the field's first byte; Colon that of its
	// colon; End is just past its last line (its line end included).
	Start, Colon, End int
}

// Header is the header block of a message, as Parse found it. It refers to
// the message it was parsed from, which must not change while it is used.
type Header struct {
	msg    []byte
	fields []Field
	end    int
	body   int
	lines  int
}

// Parse reads the header block at the start of msg, in time linear in the
// length of the block (the body is never looked at). It never fails: see
// the package documentation for where the block ends.
func Parse(msg []byte) Header {
	h := Header{msg: msg}
	var m machine
	m.feed(msg, func(start, nameEnd, colon int) {
		if n := len(h.fields); n > 0 {
			h.fields[n-1].End = start
		}
		h.fields = append(h.fields, Field{Name: string(msg[start:nameEnd]), Start: start, Colon: colon})
	})
	m.finish()
	h.end, h.body, h.lines = m.end, m.body, m.lines
	if n := len(h.fields); n > 0 {
		h.fields[n-1].End = h.end
	}
	return h
}

// Fields returns the fields in order. The slice is shared: do not modify it.
func (h Header) Fields() []Field { return h.fields }

// End is the offset just past the last header line: where fields may be
// added to the block. It is 0 when the message has no header.
func (h Header) End() int { return h.end }

// BodyStart is the offset of the body: after the empty separator line when
// there is one, else End.
func (h Header) BodyStart() int { return h.body }

// Lines is the number of lines in the header block (field lines and
// continuation lines).
func (h Header) Lines() int { return h.lines }

// Value returns f's value unfolded (RFC 5322 section 2.2.3: line breaks
// removed, the white space after them kept) with leading and trailing
// white space removed.
func (h Header) Value(f Field) string {
	raw := h.msg[f.Colon+1 : f.End]
	var b strings.Builder
	b.Grow(len(raw))
	for len(raw) > 0 {
		nl := bytes.IndexByte(raw, '\n')
		if nl < 0 {
			b.Write(raw)
			break
		}
		line := raw[:nl]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		b.Write(line)
		raw = raw[nl+1:]
	}
	return strings.Trim(b.String(), " \t")
}

// Values returns the unfolded values of every field called name
// (case-insensitively), in order.
func (h Header) Values(name string) []string {
	var out []string
	for _, f := range h.fields {
		if strings.EqualFold(f.Name, name) {
			out = append(out, h.Value(f))
		}
	}
	return out
}

// First returns the unfolded value of the first field called name, "" when
// there is none.
func (h Header) First(name string) string {
	for _, f := range h.fields {
		if strings.EqualFold(f.Name, name) {
			return h.Value(f)
		}
	}
	return ""
}

// Without returns the message without its header fields called name
// (case-insensitively, with their continuation lines), or the message
// itself when it has none. The body is never changed.
func (h Header) Without(name string) []byte {
	var cut []Field
	for _, f := range h.fields {
		if strings.EqualFold(f.Name, name) {
			cut = append(cut, f)
		}
	}
	if len(cut) == 0 {
		return h.msg
	}
	out := make([]byte, 0, len(h.msg))
	prev := 0
	for _, f := range cut {
		out = append(out, h.msg[prev:f.Start]...)
		prev = f.End
	}
	return append(out, h.msg[prev:]...)
}

// Limits bound a header block. A zero field is no limit.
type Limits struct {
	// MaxBytes bounds End: the bytes of the header block.
	MaxBytes int
	// MaxLines bounds Lines: field lines plus continuation lines.
	MaxLines int
}

// ErrTooLarge is returned when a header block exceeds its Limits.
var ErrTooLarge = errors.New("mailheader: header block over the limit")

// Check returns ErrTooLarge when h exceeds l, nil otherwise.
func (h Header) Check(l Limits) error {
	if l.MaxBytes > 0 && h.end > l.MaxBytes || l.MaxLines > 0 && h.lines > l.MaxLines {
		return ErrTooLarge
	}
	return nil
}

// Scanner follows a message as it arrives and stops at the end of its
// header block, or as soon as the block is known to exceed its Limits. It
// keeps no bytes: its memory is constant and its time linear in what it is
// given. The zero Scanner has no limits.
type Scanner struct {
	m   machine
	lim Limits
	err error
}

// NewScanner returns a Scanner that enforces l.
func NewScanner(l Limits) *Scanner { return &Scanner{lim: l} }

// Write consumes the next piece of the message. It returns ErrTooLarge
// (and keeps returning it) once the header block is known to exceed the
// limits; after the end of the header block it ignores what it is given.
// It never returns a short count.
func (s *Scanner) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.m.st == stDone {
		return len(p), nil
	}
	s.m.feed(p, nil)
	if s.over() {
		s.err = ErrTooLarge
		return 0, s.err
	}
	return len(p), nil
}

// Close marks the end of the message and returns ErrTooLarge when the
// header block exceeds the limits.
func (s *Scanner) Close() error {
	if s.err != nil {
		return s.err
	}
	s.m.finish()
	if s.over() {
		s.err = ErrTooLarge
	}
	return s.err
}

// Done reports whether the end of the header block has been seen.
func (s *Scanner) Done() bool { return s.m.st == stDone }

// End, BodyStart and Lines are those of Parse once Done (or after Close);
// before that End is how far the header block is known to reach.
func (s *Scanner) End() int { return s.m.knownEnd() }

// BodyStart is the offset of the body once Done, else 0.
func (s *Scanner) BodyStart() int { return s.m.body }

// Lines is the number of header lines seen so far.
func (s *Scanner) Lines() int { return s.m.lines }

func (s *Scanner) over() bool {
	return s.lim.MaxBytes > 0 && s.m.knownEnd() > s.lim.MaxBytes || s.lim.MaxLines > 0 && s.m.lines > s.lim.MaxLines
}

// state is where the machine is in the current line.
type state uint8

const (
	stStart  state = iota // at the start of a line
	stCR                  // the line so far is one CR
	stName                // the line so far is field-name characters
	stNameWS              // a name, then spaces or tabs
	stRest                // a header line: skipping to its LF
	stDone                // the header block has ended
)

// machine is the one definition of the header block, shared by Parse and
// Scanner. Offsets are from the start of the message.
type machine struct {
	st        state
	haveField bool
	off       int // offset of the next byte to be fed
	lineStart int
	nameEnd   int
	lines     int
	end, body int // valid in stDone
}

// feed consumes p, which follows what was fed before, calling field (when
// not nil) for each field line as soon as its colon is seen.
func (m *machine) feed(p []byte, field func(start, nameEnd, colon int)) {
	i := 0
	for i < len(p) && m.st != stDone {
		c := p[i]
		switch m.st {
		case stRest:
			nl := bytes.IndexByte(p[i:], '\n')
			if nl < 0 {
				i = len(p)
				continue
			}
			i += nl + 1
			m.st, m.lineStart = stStart, m.off+i
			continue
		case stStart:
			switch {
			case c == '\n':
				m.stop(m.lineStart, m.off+i+1)
			case c == '\r':
				m.st = stCR
			case c == ' ' || c == '\t':
				if !m.haveField {
					m.stop(m.lineStart, m.lineStart)
					break
				}
				m.lines++
				m.st = stRest
			case c > ' ' && c < 0x7f && c != ':':
				m.st = stName
			default:
				m.stop(m.lineStart, m.lineStart)
			}
		case stCR:
			if c == '\n' {
				m.stop(m.lineStart, m.off+i+1)
			} else {
				m.stop(m.lineStart, m.lineStart)
			}
		case stName, stNameWS:
			switch {
			case c == ':':
				if m.st == stName {
					m.nameEnd = m.off + i
				}
				m.lines++
				m.haveField = true
				m.st = stRest
				if field != nil {
					field(m.lineStart, m.nameEnd, m.off+i)
				}
			case c == ' ' || c == '\t':
				if m.st == stName {
					m.nameEnd = m.off + i
				}
				m.st = stNameWS
			case m.st == stName && c > ' ' && c < 0x7f:
			default:
				m.stop(m.lineStart, m.lineStart)
			}
		}
		i++
	}
	m.off += i
}

// finish ends the message: a final header line without LF is part of the
// block; any other unfinished line is the body.
func (m *machine) finish() {
	switch m.st {
	case stDone:
	case stRest:
		m.stop(m.off, m.off)
	default:
		m.stop(m.lineStart, m.lineStart)
	}
}

func (m *machine) stop(end, body int) {
	m.st, m.end, m.body = stDone, end, body
}

// knownEnd is End once done, else how far the header block surely reaches.
func (m *machine) knownEnd() int {
	switch m.st {
	case stDone:
		return m.end
	case stRest:
		return m.off
	}
	return m.lineStart
}

// Clean makes s safe to store in a text column: valid UTF-8 (each invalid
// byte becomes U+FFFD), no NUL, at most limit bytes, cut on a character
// boundary. Its cost is bounded by limit, not by len(s).
func Clean(s string, limit int) string {
	if limit <= 0 {
		return ""
	}
	// Only the first limit bytes can survive: a replacement is never
	// shorter than what it replaces, except the NUL that is dropped, so
	// look at a little more than limit bytes when there are NULs.
	if len(s) > 4*limit {
		s = s[:4*limit]
	}
	var b strings.Builder
	b.Grow(min(len(s), limit))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0:
			i++
			continue
		case r == utf8.RuneError && size <= 1:
			r, size = utf8.RuneError, 1
		}
		if b.Len()+utf8.RuneLen(r) > limit {
			break
		}
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
