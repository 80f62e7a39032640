package inspect

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/untrusted"
)

// Details of a ThreatResult without a threat (Postal's text).
const noThreat = "No threats found"

// maxClamdReply caps the bytes read from clamd.
const maxClamdReply = 4096

// ClamAV streams a message to clamd with zINSTREAM, as Postal does.
type ClamAV struct {
	// Addr is host:port (Postal's default port 2000; clamd's own 3310).
	Addr string
	// Timeout bounds the whole exchange (Postal: 10 s).
	Timeout time.Duration
	// ChunkSize is the size of the chunks sent (default 1 MiB); clamd
	// refuses a chunk over its StreamMaxLength.
	ChunkSize int
}

// Scan streams raw to clamd in chunks (each a 4-byte big-endian length and
// the data, then a zero length) and parses the reply.
func (c *ClamAV) Scan(ctx context.Context, raw []byte) (ThreatResult, error) {
	chunk := c.ChunkSize
	if chunk <= 0 {
		chunk = 1 << 20
	}
	reply, err := exchange(ctx, c.Addr, c.Timeout, func(w io.Writer) error {
		if _, err := io.WriteString(w, "zINSTREAM\x00"); err != nil {
			return err
		}
		var n [4]byte
		for rest := raw; len(rest) > 0; {
			part := rest[:min(chunk, len(rest))]
			rest = rest[len(part):]
			binary.BigEndian.PutUint32(n[:], uint32(len(part)))
			if _, err := w.Write(n[:]); err != nil {
				return err
			}
			if _, err := w.Write(part); err != nil {
				return err
			}
		}
		binary.BigEndian.PutUint32(n[:], 0)
		_, err := w.Write(n[:])
		return err
	}, maxClamdReply, 0)
	if err != nil {
		return ThreatResult{}, unavailable("clamav", err)
	}
	t, err := ParseClamdReply(reply)
	if err != nil {
		return ThreatResult{}, unavailable("clamav", err)
	}
	return t, nil
}

// ParseClamdReply parses clamd's answer to INSTREAM: "stream: OK", "stream:
// <signature> FOUND", or an error ("INSTREAM size limit exceeded. ERROR",
// "<text> ERROR"), which is returned as an error. A trailing NUL or line
// feed is ignored.
func ParseClamdReply(b []byte) (ThreatResult, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ThreatResult{}, fmt.Errorf("clamd: empty reply")
	}
	if strings.HasSuffix(s, " ERROR") || s == "ERROR" {
		return ThreatResult{}, fmt.Errorf("clamd: %s", untrusted.Text(s, 200))
	}
	// "stream: " is INSTREAM's file name; older clamd versions number it.
	_, v, ok := strings.Cut(s, ": ")
	if !ok {
		return ThreatResult{}, fmt.Errorf("clamd: unexpected reply %q", untrusted.Text(s, 200))
	}
	switch {
	case v == "OK":
		return ThreatResult{Details: noThreat}, nil
	case strings.HasSuffix(v, " FOUND"):
		name := strings.TrimSpace(strings.TrimSuffix(v, " FOUND"))
		if name == "" {
			return ThreatResult{}, fmt.Errorf("clamd: FOUND without a name")
		}
		return ThreatResult{Threat: true, Details: untrusted.Text(name, MaxThreatLen)}, nil
	}
	return ThreatResult{}, fmt.Errorf("clamd: unexpected reply %q", untrusted.Text(s, 200))
}
