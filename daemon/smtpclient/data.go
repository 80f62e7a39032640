package smtpclient

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strings"
)

// writeData writes data to w as an SMTP DATA payload, terminator included: in
// one pass it turns every bare LF and bare CR into CRLF, doubles a '.' that
// starts a line, makes sure the payload ends with CRLF, and appends ".\r\n".
// Errors are left in w (bufio errors are sticky) for the caller's Flush.
func writeData(w *bufio.Writer, data []byte) {
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		// Bare CRs inside the line end lines of their own.
		for {
			if len(line) > 0 && line[0] == '.' {
				_ = w.WriteByte('.')
			}
			i := bytes.IndexByte(line, '\r')
			if i < 0 {
				break
			}
			_, _ = w.Write(line[:i])
			_, _ = w.WriteString("\r\n")
			line = line[i+1:]
		}
		_, _ = w.Write(line)
		_, _ = w.WriteString("\r\n")
	}
	_, _ = w.WriteString(".\r\n")
}

// has8bit reports whether data contains a byte with the high bit set.
func has8bit(data []byte) bool {
	const high = 0x8080808080808080
	for len(data) >= 8 {
		if binary.LittleEndian.Uint64(data)&high != 0 {
			return true
		}
		data = data[8:]
	}
	for _, b := range data {
		if b >= 0x80 {
			return true
		}
	}
	return false
}

// validAddress reports whether s can be placed between the angle brackets of
// MAIL FROM or RCPT TO without changing the command: no line breaks, NULs,
// angle brackets or surrounding spaces.
func validAddress(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00<>") && strings.TrimSpace(s) == s
}
