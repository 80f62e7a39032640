// Package untrusted turns text that came from outside (SMTP replies and
// banners, fields of received bounces, anything a peer chose) into text that
// is safe to store in SQL, write to logs, put in a DSN or a webhook payload.
//
// Contract: [Text] and [Lines] always return valid UTF-8 of at most max bytes,
// cut on a character boundary, with no NUL byte and no other control
// character except tab (and line feed for [Lines]). They run in time linear in
// the part of the input they keep and return their argument unchanged (no
// copy) when it already satisfies the contract.
//
// The rules, byte by byte:
//   - a valid UTF-8 sequence is kept, unless it encodes a C1 control
//     (U+0080-U+009F), which becomes U+FFFD;
//   - a byte that does not start a valid UTF-8 sequence is read as
//     ISO-8859-1, the legacy charset SMTP servers commonly answer in:
//     0xA0-0xFF become U+00A0-U+00FF (so "f\xfcr" reads "für"), and
//     0x80-0x9F (C1 controls in ISO-8859-1, and the stray continuation bytes
//     of broken UTF-8) become U+FFFD;
//   - tab is kept; CR and LF become a space in [Text] (so a multi-line reply
//     reads as one line with its words apart); [Lines] keeps LF and turns CR
//     into a space;
//   - every other C0 control (NUL included) and DEL become U+FFFD, which
//     shows that something was there without letting it reach a terminal,
//     a log line or a PostgreSQL text column (which refuses NUL).
//
// A max of 0 or less yields "". Bidirectional-override and other format
// characters are valid text and are kept.
package untrusted

import (
	"strings"
	"unicode/utf8"
)

// Text returns s as a single line of valid UTF-8 of at most max bytes,
// following the package rules (line breaks become spaces).
func Text(s string, max int) string { return clean(s, max, false) }

// Lines is [Text] for multi-line text: line feeds are kept.
func Lines(s string, max int) string { return clean(s, max, true) }

// IsASCII reports whether s is plain 7-bit ASCII.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// clean implements Text and Lines.
func clean(s string, max int, keepLF bool) string {
	if max <= 0 {
		return ""
	}
	// Fast path: the longest prefix that needs no change.
	i := 0
	for i < len(s) {
		c := s[i]
		if keeps(c, keepLF) {
			if i+1 > max {
				break
			}
			i++
			continue
		}
		if c < utf8.RuneSelf {
			break
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || isC1(r) || i+size > max {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	if i == max {
		return s[:i]
	}
	var b strings.Builder
	// Bytes read as ISO-8859-1 take two bytes each in UTF-8.
	b.Grow(min(max, 2*len(s)))
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		var r rune
		size := 1
		switch {
		case keeps(c, keepLF):
			r = rune(c)
		case c == '\r' || c == '\n':
			r = ' '
		case c < utf8.RuneSelf:
			r = utf8.RuneError // other C0 controls and DEL
		default:
			r, size = utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				r = latin1(c)
			case isC1(r):
				r = utf8.RuneError
			}
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
		i += size
	}
	return b.String()
}

// keeps reports whether the ASCII byte c is kept as it is.
func keeps(c byte, keepLF bool) bool {
	return (c >= 0x20 && c < 0x7f) || c == '\t' || (keepLF && c == '\n')
}

// isC1 reports whether r is a C1 control character.
func isC1(r rune) bool { return r >= 0x80 && r <= 0x9f }

// latin1 maps a byte that is not valid UTF-8 to its ISO-8859-1 code point, or
// to U+FFFD for the C1 range.
func latin1(c byte) rune {
	if c < 0xa0 {
		return utf8.RuneError
	}
	return rune(c)
}
