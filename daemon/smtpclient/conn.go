package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

const (
	readBufferSize  = 4096  // also the longest reply line accepted
	writeBufferSize = 16384 // a typical message and its terminator in one write
	quitTimeout     = 2 * time.Second
)

// conn is one SMTP session. It is used by one goroutine at a time (the pool
// hands it out exclusively); only raw.Close may be called concurrently, to
// abort I/O when a context ends.
type conn struct {
	raw net.Conn // the TCP connection
	nc  net.Conn // raw, or a *tls.Conn over it
	br  *bufio.Reader
	bw  *bufio.Writer
	rep reply
	ext extensions
	// scratch formats numbers without allocating.
	scratch []byte

	readTimeout  time.Duration
	openDeadline time.Time // while non-zero, no I/O may outlast it
	now          func() time.Time

	tls        bool
	tlsVersion string
	tlsCipher  string
	remote     string

	// sent counts the transactions started on this connection.
	sent int
	// lastUsed is when the connection last went idle.
	lastUsed time.Time
	// broken marks a connection that must not be reused.
	broken bool
}

func newConn(raw net.Conn, readTimeout time.Duration, now func() time.Time) *conn {
	cn := &conn{
		raw:         raw,
		nc:          raw,
		br:          bufio.NewReaderSize(raw, readBufferSize),
		bw:          bufio.NewWriterSize(raw, writeBufferSize),
		readTimeout: readTimeout,
		now:         now,
	}
	if a := raw.RemoteAddr(); a != nil {
		cn.remote = a.String()
	}
	return cn
}

// deadline is when the next read or write must be done by.
func (cn *conn) deadline() time.Time {
	d := cn.now().Add(cn.readTimeout)
	if !cn.openDeadline.IsZero() && cn.openDeadline.Before(d) {
		d = cn.openDeadline
	}
	return d
}

// read reads one reply into cn.rep, bounded by the read timeout. Any failure
// marks the connection broken.
func (cn *conn) read() error {
	if err := cn.nc.SetReadDeadline(cn.deadline()); err != nil {
		cn.broken = true
		return fmt.Errorf("set read deadline: %w", err)
	}
	if err := readReply(cn.br, &cn.rep); err != nil {
		cn.broken = true
		return fmt.Errorf("read reply: %w", err)
	}
	if cn.rep.code == 421 {
		// The server is closing the channel.
		cn.broken = true
	}
	return nil
}

// flush writes the buffered commands, bounded by the read timeout. Any
// failure marks the connection broken.
func (cn *conn) flush() error {
	if err := cn.nc.SetWriteDeadline(cn.deadline()); err != nil {
		cn.broken = true
		return fmt.Errorf("set write deadline: %w", err)
	}
	if err := cn.bw.Flush(); err != nil {
		cn.broken = true
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// cmd buffers one command line made of parts.
func (cn *conn) cmd(parts ...string) {
	for _, p := range parts {
		_, _ = cn.bw.WriteString(p)
	}
	_, _ = cn.bw.WriteString("\r\n")
}

// roundTrip sends one command and reads its reply.
func (cn *conn) roundTrip(parts ...string) error {
	cn.cmd(parts...)
	if err := cn.flush(); err != nil {
		return err
	}
	return cn.read()
}

// startTLS upgrades the connection to TLS over raw and records the session's
// parameters.
func (cn *conn) startTLS(ctx context.Context, cfg *tls.Config) error {
	tc := tls.Client(cn.raw, cfg)
	if err := tc.SetDeadline(cn.deadline()); err != nil {
		cn.broken = true
		return fmt.Errorf("set deadline: %w", err)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		cn.broken = true
		return fmt.Errorf("tls handshake: %w", err)
	}
	st := tc.ConnectionState()
	cn.nc = tc
	cn.br.Reset(tc)
	cn.bw.Reset(tc)
	cn.tls = true
	cn.tlsVersion = tls.VersionName(st.Version)
	cn.tlsCipher = tls.CipherSuiteName(st.CipherSuite)
	return nil
}

// handshake runs the session opening: implicit TLS, greeting, EHLO (HELO when
// EHLO is refused with 5xx) and STARTTLS as the mode asks, all within
// openTimeout.
func (cn *conn) handshake(ctx context.Context, d Destination, helo string, openTimeout time.Duration, base *tls.Config) *Error {
	cn.openDeadline = cn.now().Add(openTimeout)
	defer func() { cn.openDeadline = time.Time{} }()
	mode := d.SSLMode.normalized()

	if mode == SSLTLS {
		if err := cn.startTLS(ctx, tlsConfig(base, d)); err != nil {
			return ioError(ctx, StageDial, err)
		}
	}
	if err := cn.read(); err != nil {
		return ioError(ctx, StageGreeting, err)
	}
	if cn.rep.code != 220 {
		cn.broken = true
		return replyError(StageGreeting, &cn.rep)
	}
	if e := cn.hello(ctx, helo); e != nil {
		return e
	}
	if mode != SSLAuto && mode != SSLStartTLS {
		return nil
	}
	if !cn.ext.startTLS {
		if mode == SSLStartTLS {
			cn.broken = true
			return &Error{Stage: StageStartTLS, Message: "server does not offer STARTTLS, which this destination requires"}
		}
		return nil
	}
	if err := cn.roundTrip("STARTTLS"); err != nil {
		return ioError(ctx, StageStartTLS, err)
	}
	if cn.rep.code != 220 {
		if mode == SSLStartTLS {
			cn.broken = true
			e := replyError(StageStartTLS, &cn.rep)
			e.Permanent = false // the requirement is ours; the server may offer TLS later
			return e
		}
		return nil // Auto: the server declined; the session continues in plain text
	}
	if cn.br.Buffered() > 0 {
		// Anything sent before the handshake would be treated as if it came
		// over TLS (the STARTTLS command-injection attack).
		cn.broken = true
		return &Error{Stage: StageStartTLS, Message: "server sent data after its STARTTLS reply"}
	}
	if err := cn.startTLS(ctx, tlsConfig(base, d)); err != nil {
		return ioError(ctx, StageStartTLS, err)
	}
	return cn.hello(ctx, helo)
}

// hello sends EHLO and records the extensions; a 5xx answer falls back to HELO
// (no extensions).
func (cn *conn) hello(ctx context.Context, helo string) *Error {
	if err := cn.roundTrip("EHLO ", helo); err != nil {
		return ioError(ctx, StageEHLO, err)
	}
	if cn.rep.code == 250 {
		cn.ext = parseExtensions(cn.rep.text)
		return nil
	}
	if cn.rep.code < 500 || cn.broken {
		cn.broken = true
		return replyError(StageEHLO, &cn.rep)
	}
	if err := cn.roundTrip("HELO ", helo); err != nil {
		return ioError(ctx, StageEHLO, err)
	}
	if cn.rep.code != 250 {
		cn.broken = true
		return replyError(StageEHLO, &cn.rep)
	}
	cn.ext = extensions{}
	return nil
}

// quit says goodbye within quitTimeout and closes the connection. It returns
// the close error only: a server that does not answer QUIT changes nothing.
func (cn *conn) quit() error {
	if !cn.broken {
		_ = cn.nc.SetDeadline(cn.now().Add(quitTimeout))
		cn.cmd("QUIT")
		if cn.bw.Flush() == nil {
			_ = readReply(cn.br, &cn.rep)
		}
	}
	return cn.close()
}

// close closes the TCP connection without a QUIT. Closing an already closed
// connection is not an error.
func (cn *conn) close() error {
	cn.broken = true
	if err := cn.raw.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close %s: %w", cn.remote, err)
	}
	return nil
}

// tlsConfig returns a copy of base (or of a TLS 1.2+ default) naming the
// destination's server.
func tlsConfig(base *tls.Config, d Destination) *tls.Config {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = d.serverName()
	}
	return cfg
}

// dialAddress is host:port for net.Dial.
func dialAddress(d Destination) string {
	return net.JoinHostPort(d.Host, strconv.Itoa(d.port()))
}
