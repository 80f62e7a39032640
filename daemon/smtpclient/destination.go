package smtpclient

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// SSLMode says how a connection to a Destination is secured. The values are
// Postal's relay ssl_mode names.
type SSLMode string

const (
	// SSLAuto uses STARTTLS when the server offers it and plain text when it
	// does not. A server that offers STARTTLS but then refuses the command is
	// used in plain text; a TLS handshake that fails after the server accepted
	// STARTTLS fails the attempt as temporary, so the caller retries later
	// rather than sending in clear over a connection an attacker may be
	// tampering with. The zero SSLMode means SSLAuto.
	SSLAuto SSLMode = "Auto"
	// SSLNone never uses TLS, even when the server offers STARTTLS.
	SSLNone SSLMode = "None"
	// SSLStartTLS requires STARTTLS: a server that does not offer it, refuses
	// it, or fails the handshake fails the attempt as temporary.
	SSLStartTLS SSLMode = "STARTTLS"
	// SSLTLS starts TLS as soon as the TCP connection is up (implicit TLS, the
	// port 465 convention).
	SSLTLS SSLMode = "TLS"
)

// ParseSSLMode maps Postal's ssl_mode values (None, Auto, STARTTLS, TLS,
// matched case-insensitively) to an SSLMode. An empty string is SSLAuto. It
// returns an error naming the accepted values for anything else.
func ParseSSLMode(s string) (SSLMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return SSLAuto, nil
	case "none":
		return SSLNone, nil
	case "starttls":
		return SSLStartTLS, nil
	case "tls":
		return SSLTLS, nil
	}
	return "", fmt.Errorf("unknown ssl_mode %q: want None, Auto, STARTTLS or TLS", s)
}

// normalized returns the mode with the zero value mapped to SSLAuto.
func (m SSLMode) normalized() SSLMode {
	if m == "" {
		return SSLAuto
	}
	return m
}

// Destination is where a message is sent: one SMTP server, reached from an
// optional local address, with a TLS policy.
type Destination struct {
	// Host is the server's host name or IP address.
	Host string
	// Port is the TCP port; 0 means 25, or 465 when SSLMode is SSLTLS.
	Port int
	// SSLMode is the TLS policy; the zero value is SSLAuto.
	SSLMode SSLMode
	// LocalAddr, when set, is the source address to bind (IP pools). It is
	// applied by the default dialer only; a custom Options.Dialer must bind
	// it itself.
	LocalAddr net.IP
	// ServerName is the name used for TLS SNI and certificate verification;
	// empty means Host.
	ServerName string
}

// port returns the effective TCP port.
func (d Destination) port() int {
	if d.Port != 0 {
		return d.Port
	}
	if d.SSLMode == SSLTLS {
		return 465
	}
	return 25
}

// serverName returns the effective TLS name.
func (d Destination) serverName() string {
	if d.ServerName != "" {
		return d.ServerName
	}
	return d.Host
}

// Key identifies the connection pool a Destination uses: two Destinations with
// equal keys may share connections. It covers the host (case-insensitively),
// the effective port, the local address, the SSL mode and the TLS name.
func (d Destination) Key() string {
	host := d.Host
	name := d.serverName()
	var stack [128]byte
	b := append(stack[:0], host...)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(d.port()), 10)
	b = append(b, '|')
	if d.LocalAddr != nil {
		if t, err := d.LocalAddr.AppendText(b); err == nil {
			b = t
		}
	}
	b = append(b, '|')
	b = append(b, d.SSLMode.normalized()...)
	if !strings.EqualFold(name, host) {
		b = append(b, '|')
		b = append(b, name...)
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
