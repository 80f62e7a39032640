package smtpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"
)

// acceptLoop accepts raw connections until ctx ends or the listener is
// closed, and admits each on its own goroutine (reading a PROXY header may
// take a while and must not hold up the next accept). It returns nil on
// shutdown and an error when the listener fails for good.
func (s *Server) acceptLoop(ctx context.Context, handoff *chanListener, admitting *sync.WaitGroup) error {
	var delay time.Duration
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var tmp interface{ Temporary() bool }
			if !errors.As(err, &tmp) || !tmp.Temporary() {
				return fmt.Errorf("smtpserver: accept: %w", err)
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		delay = 0
		s.metrics.connections.Inc()
		admitting.Add(1)
		go func() {
			defer admitting.Done()
			s.admit(ctx, raw, handoff)
		}()
	}
}

// admit applies the connection caps and the PROXY header, then hands the
// connection to go-smtp. Refused connections are told why and closed
// before any greeting.
func (s *Server) admit(ctx context.Context, raw net.Conn, handoff *chanListener) {
	if !s.conns.reserve() {
		s.refuseConn(raw, "max_connections", "421 4.7.0 Too many connections, try again later")
		return
	}
	conn := raw
	if s.o.Config.ProxyProtocol {
		if peer := clientIP(raw.RemoteAddr()); !inNetworks(s.proxyTrusted, peer) {
			s.conns.unreserve()
			s.logUntrustedPeer(peer)
			s.refuseConn(raw, "proxy_untrusted", "554 5.7.1 Connections are accepted only through the configured proxies")
			return
		}
		pc := proxyproto.NewConn(raw, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(proxyHeaderTimeout))
		stop := context.AfterFunc(ctx, func() { _ = raw.SetReadDeadline(time.Now()) })
		hdr := pc.ProxyHeader()
		stop()
		if hdr == nil {
			s.conns.unreserve()
			s.log.Debug("connection without a valid PROXY header", "peer", raw.RemoteAddr().String())
			s.refuseConn(raw, "proxy", "502 5.5.2 Proxy error")
			return
		}
		conn = pc
	}
	tc := newTrackedConn(s, conn, clientIP(conn.RemoteAddr()))
	switch s.conns.add(tc) {
	case admitPerIP:
		s.refuseConn(conn, "max_connections_per_ip", "421 4.7.0 Too many connections from your address, try again later")
		return
	case admitDraining:
		s.refuseConn(conn, "shutdown", "421 4.3.2 Server shutting down, try again later")
		return
	}
	s.metrics.open.Inc()
	if tc.logged {
		s.log.Info("connection opened", "remote", tc.ip.String(), "proxied", conn != raw)
	}
	if !handoff.offer(ctx, tc) {
		_ = tc.Close()
	}
}

// logUntrustedPeer reports a connection refused because its peer is not a
// trusted proxy: at warning level at most once a minute (so an operator
// who forgot smtp_server.proxy_protocol_trusted sees it, and a scan cannot
// flood the log), at debug level otherwise.
func (s *Server) logUntrustedPeer(peer netip.Addr) {
	now := time.Now().Unix()
	last := s.untrustedWarned.Load()
	if now-last >= 60 && s.untrustedWarned.CompareAndSwap(last, now) {
		s.log.Warn("connection refused: PROXY protocol is on and the peer is not in smtp_server.proxy_protocol_trusted",
			"peer", peer.String())
		return
	}
	s.log.Debug("connection refused: peer is not a trusted proxy", "peer", peer.String())
}

// refuseConn writes one reply line and closes c.
func (s *Server) refuseConn(c net.Conn, reason, line string) {
	s.metrics.refused.WithLabelValues(reason).Inc()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, line+"\r\n")
	_ = c.Close()
}

// clientIP extracts the client's IP from a connection address, with
// IPv4-mapped IPv6 addresses turned into IPv4. It returns the zero Addr for
// an address that is not IP (net.Pipe in tests).
func clientIP(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

type admitResult int

const (
	admitOK admitResult = iota
	admitPerIP
	admitDraining
)

// connTable counts open connections in total and per client key (IPv4
// address or IPv6 /64, see clientKey) and keeps them for draining. The
// total is reserved at accept time, before the client address is known (a
// PROXY header may name it).
type connTable struct {
	mu       sync.Mutex
	max      int
	maxPerIP int
	total    int
	perIP    map[netip.Prefix]int
	open     map[*trackedConn]struct{}
	draining bool
}

func newConnTable(maxTotal, maxPerIP int) *connTable {
	return &connTable{max: maxTotal, maxPerIP: maxPerIP, perIP: map[netip.Prefix]int{}, open: map[*trackedConn]struct{}{}}
}

// reserve takes one place of the total; false when none is free.
func (t *connTable) reserve() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.total >= t.max {
		return false
	}
	t.total++
	return true
}

// unreserve gives back a place taken by reserve for a connection that was
// never added.
func (t *connTable) unreserve() {
	t.mu.Lock()
	t.total--
	t.mu.Unlock()
}

// add registers a connection holding a reserved place. Unless it returns
// admitOK the place is given back.
func (t *connTable) add(c *trackedConn) admitResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.draining:
		t.total--
		return admitDraining
	case t.perIP[c.key] >= t.maxPerIP:
		t.total--
		return admitPerIP
	}
	t.perIP[c.key]++
	t.open[c] = struct{}{}
	return admitOK
}

// remove forgets an added connection and frees its places.
func (t *connTable) remove(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.open[c]; !ok {
		return
	}
	delete(t.open, c)
	t.total--
	if t.perIP[c.key]--; t.perIP[c.key] <= 0 {
		delete(t.perIP, c.key)
	}
}

// drainAll refuses new connections and makes every open one end after the
// message it is receiving, if any.
func (t *connTable) drainAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.draining = true
	for c := range t.open {
		c.beginDrain()
	}
}

// closeAll closes every open connection's socket and returns how many
// there were.
func (t *connTable) closeAll() int {
	t.mu.Lock()
	conns := make([]*trackedConn, 0, len(t.open))
	for c := range t.open {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// trackedConn is an admitted client connection: the socket (after any PROXY
// header) plus the per-connection state that outlives go-smtp sessions
// (which restart after STARTTLS): command and refusal counts, the reverse
// DNS name, the message deadline and the draining state.
type trackedConn struct {
	net.Conn
	srv    *Server
	ip     netip.Addr
	key    netip.Prefix // clientKey(ip): what per-client limits count
	opened time.Time
	logged bool

	mu       sync.Mutex
	draining bool
	inData   bool
	// While inData: when the message must be complete, whether the SMTP
	// engine has since set a read deadline of its own (it does before each
	// BDAT command), and the timer that enforces the end in that case.
	dataDeadline time.Time
	dataEngine   bool
	dataTimer    *time.Timer
	dataGen      uint64 // counts messages, so a late timer knows its own
	// dataExpired: a read hit the message deadline.
	dataExpired bool

	commands atomic.Int64
	bad      atomic.Int64
	messages atomic.Int64
	tlsSeen  atomic.Bool

	// engine is go-smtp's connection (set by the first session), through
	// which replies written from here pass the TLS layer once there is one;
	// tlsStarted reports a TLS handshake (possibly before any session).
	engine     atomic.Pointer[smtp.Conn]
	tlsStarted atomic.Bool
	hungUp     atomic.Bool

	rdnsOnce sync.Once
	rdns     string

	// wmu orders writes; held keeps the lines of a multi-line reply until
	// its last line (see Write).
	wmu  sync.Mutex
	held []byte

	closeOnce sync.Once
}

func newTrackedConn(s *Server, c net.Conn, ip netip.Addr) *trackedConn {
	logged := s.o.Config.LogConnections && (s.logExclude == nil || !s.logExclude.MatchString(ip.String()))
	return &trackedConn{Conn: c, srv: s, ip: ip, key: clientKey(ip), opened: time.Now(), logged: logged}
}

// Read reads from the client, except that a draining connection between
// messages reads a timeout, which go-smtp answers with 421 and a close.
// A read that fails at the message deadline is remembered (dataExpired).
func (c *trackedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	stop := c.draining && !c.inData
	c.mu.Unlock()
	if stop {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Conn.Read(b)
	if err != nil && isTimeout(err) {
		c.mu.Lock()
		if c.inData && !time.Now().Before(c.dataDeadline) {
			c.dataExpired = true
		}
		c.mu.Unlock()
	}
	return n, err
}

// SetReadDeadline is called by go-smtp once before it reads each command
// line (Conn.readLine, with Server.ReadTimeout, which New always sets), so
// it is where command lines are counted against max_commands: the line
// over the limit is not read; the client is told 421 and the connection
// closed. NOOP, VRFY, HELP, RSET, QUIT and AUTH continuation lines count
// like any other. (TestSessionLimits' max_commands cases pin go-smtp's
// behaviour.) It also keeps a draining connection's deadline in the past
// between messages, and ends a connection whose message deadline passed.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if c.commands.Add(1) > int64(c.srv.o.Config.MaxCommands) {
		c.refuse(errTooManyCmds)
		return net.ErrClosed
	}
	c.mu.Lock()
	expired := c.dataExpired
	if c.inData {
		c.dataEngine = true // BDAT: the engine reads commands mid-message
	}
	c.mu.Unlock()
	if expired {
		// A BDAT chunk was cut by the deadline (go-smtp answered it);
		// the rest of the chunk must not be read as commands.
		c.refuse(errDataTimeout)
		return net.ErrClosed
	}
	return c.setReadDeadline(t)
}

func (c *trackedConn) setReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining && !c.inData {
		t = time.Now()
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines; it counts no command.
func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.setReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// refuse ends the connection with r's reply, counting r as a client
// error before the client can read the reply (unless the connection was
// already hung up).
func (c *trackedConn) refuse(r refusal) {
	c.hangupCounting(r.label, r.err)
}

// hangup writes replies to the client, through TLS when the connection
// has it, and closes the connection. Only the first call does anything;
// it reports whether this was it. Before any session a connection that
// started TLS is closed without a reply (there is no TLS layer here to
// write through).
func (c *trackedConn) hangup(replies ...*smtp.SMTPError) bool {
	return c.hangupCounting("", replies...)
}

// hangupCounting is hangup that first counts a client error labelled
// label (none when empty), so the count is there once the client sees the
// reply.
func (c *trackedConn) hangupCounting(label string, replies ...*smtp.SMTPError) bool {
	if !c.hungUp.CompareAndSwap(false, true) {
		return false
	}
	if label != "" {
		c.srv.metrics.clientErrors.WithLabelValues(label).Inc()
	}
	var w net.Conn
	if e := c.engine.Load(); e != nil {
		w = e.Conn()
	} else if !c.tlsStarted.Load() {
		w = c.Conn
	}
	if w != nil {
		var b strings.Builder
		for _, r := range replies {
			fmt.Fprintf(&b, "%d %d.%d.%d %s\r\n", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], r.Message)
		}
		_ = w.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(w, b.String())
	}
	_ = c.Close()
	return true
}

// maxHeldReply bounds the reply lines Write holds back; more go out as
// they come.
const maxHeldReply = 2048

// Write sends b, except that a continuation line of a multi-line reply
// ("250-PIPELINING\r\n") is held until the reply's last line, and the
// whole reply then goes out in one write. go-smtp flushes each reply line
// on its own (textproto's PrintfLine), so an EHLO reply would otherwise
// cost a system call and a TCP segment per extension. Nothing is held
// but whole continuation lines: go-smtp writes the final line of a reply
// right after them, and anything else (a final line, a TLS record, a
// partial line) sends what is held first, in order.
func (c *trackedConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if continuationLine(b) && len(c.held)+len(b) <= maxHeldReply {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	if len(c.held) == 0 {
		return c.Conn.Write(b)
	}
	held := len(c.held)
	c.held = append(c.held, b...)
	n, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	return max(n-held, 0), err
}

// continuationLine reports whether b is exactly one reply line that is
// not the last of its reply: three digits, a hyphen, text, CRLF.
func continuationLine(b []byte) bool {
	n := len(b)
	if n < 6 || b[3] != '-' || b[n-2] != '\r' || b[n-1] != '\n' {
		return false
	}
	for _, d := range b[:3] {
		if d < '0' || d > '9' {
			return false
		}
	}
	for _, x := range b[4 : n-2] {
		if x == '\n' || x == '\r' {
			return false
		}
	}
	return true
}

// Close closes the socket and, the first time, frees the connection's
// places and logs its end.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.srv.conns.remove(c)
		c.srv.metrics.open.Dec()
		if c.logged {
			c.srv.log.Info("connection closed", "remote", c.ip.String(), "duration", time.Since(c.opened).Round(time.Millisecond),
				"messages", c.messages.Load(), "commands", c.commands.Load())
		}
	})
	return err
}

func (c *trackedConn) beginDrain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if !c.inData {
		_ = c.Conn.SetReadDeadline(time.Now())
	}
}

// enterData marks the connection as receiving a message body, which
// draining lets finish, and bounds the whole body by d: the read deadline
// bounds a DATA body (session.Data answers it), and a timer ends a BDAT
// transfer, whose commands between chunks would otherwise move the
// deadline on with each chunk.
func (c *trackedConn) enterData(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inData = true
	c.dataDeadline = time.Now().Add(d)
	c.dataEngine, c.dataExpired = false, false
	_ = c.Conn.SetReadDeadline(c.dataDeadline)
	if c.dataTimer != nil {
		c.dataTimer.Stop()
	}
	c.dataGen++
	gen := c.dataGen
	c.dataTimer = time.AfterFunc(d, func() { c.dataTimedOut(gen) })
}

// dataTimedOut ends a BDAT transfer that outlived its deadline with 421
// and closes the connection. A DATA body (the engine set no deadline
// since enterData) is left to its read deadline.
func (c *trackedConn) dataTimedOut(gen uint64) {
	c.mu.Lock()
	live := c.inData && c.dataGen == gen && c.dataEngine
	c.mu.Unlock()
	if live {
		c.refuse(errDataTimeout)
	}
}

// leaveData ends a message body; a draining connection stops reading.
func (c *trackedConn) leaveData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inData = false
	if c.dataTimer != nil {
		c.dataTimer.Stop()
		c.dataTimer = nil
	}
	if c.draining {
		_ = c.Conn.SetReadDeadline(time.Now())
	}
}

// reverseName is the client's host name from reverse DNS, looked up once
// per connection through the server's lookup cache (so a sender that opens
// many connections costs one PTR query per cache TTL, and concurrent ones
// share it); the address itself when there is none.
func (c *trackedConn) reverseName(ctx context.Context) string {
	c.rdnsOnce.Do(func() {
		if !c.ip.IsValid() {
			c.rdns = "unknown"
			return
		}
		ip := c.ip.String()
		c.rdns = ip
		name, _, err := cached(c.srv.lookups, ctx, "ptr:"+ip, func(ctx context.Context) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, c.srv.o.DNS.Timeout.Duration())
			defer cancel()
			names, err := c.srv.o.LookupAddr(ctx, ip)
			if dnsErr := (*net.DNSError)(nil); errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				return ip, nil // no PTR record: remembered like a name
			}
			if err != nil {
				return "", err // timeouts and failures are not cached
			}
			if len(names) > 0 {
				if n := hostnameText(names[0]); n != "" {
					return n, nil
				}
			}
			return ip, nil
		})
		if err == nil {
			c.rdns = name
		}
	})
	return c.rdns
}

// chanListener is the net.Listener go-smtp serves: it yields the
// connections admit hands over.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// offer hands c to the server; false when the listener closed first.
func (l *chanListener) offer(ctx context.Context, c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	case <-ctx.Done():
		return false
	}
}

// Accept returns the next admitted connection.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops Accept.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is the real listener's address.
func (l *chanListener) Addr() net.Addr { return l.addr }
