package store_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// pgCounter is a TCP proxy in front of PostgreSQL that counts round trips:
// every Sync (the end of an extended-protocol pipeline) and every simple
// Query a client sends is answered by one ReadyForQuery, so each is one
// wait for the server. database/sql's liveness ping of a connection idle
// for over a second ("-- ping") is not counted: it is the pool's, not the
// caller's.
type pgCounter struct {
	ln       net.Listener
	upstream string
	n        atomic.Int64
	wg       sync.WaitGroup
}

// startPGCounter proxies to the host:port of the PostgreSQL URL upstream
// until t ends.
func startPGCounter(t testing.TB, upstream string) *pgCounter {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgCounter{ln: ln, upstream: u.Host}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.wg.Wait()
	})
	return p
}

// URL is upstream with its host:port replaced by the proxy's.
func (p *pgCounter) URL(upstream string) string {
	u, _ := url.Parse(upstream)
	u.Host = p.ln.Addr().String()
	return u.String()
}

// RoundTrips is how many round trips clients have made so far.
func (p *pgCounter) RoundTrips() int64 { return p.n.Load() }

func (p *pgCounter) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(c, up)
			_ = c.Close()
		}()
		go func() {
			defer p.wg.Done()
			_ = p.forward(up, c)
			_ = up.Close()
		}()
	}
}

// The codes of the untyped requests that may come before the startup
// message (the server answers each with one byte, then the startup follows).
const (
	sslRequest    = 80877103
	gssEncRequest = 80877104
)

// forward copies the client's messages to the server, counting Syncs and
// Queries.
func (p *pgCounter) forward(up io.Writer, c io.Reader) error {
	r := bufio.NewReader(c)
	// Untyped: optional SSL or GSS requests, then the startup message.
	for {
		msg, err := readMessage(r, false)
		if err != nil {
			return err
		}
		if _, err := up.Write(msg); err != nil {
			return err
		}
		if len(msg) < 8 {
			return errors.New("short startup message")
		}
		if code := binary.BigEndian.Uint32(msg[4:8]); code != sslRequest && code != gssEncRequest {
			break
		}
	}
	for {
		msg, err := readMessage(r, true)
		if err != nil {
			return err
		}
		switch msg[0] {
		case 'S':
			p.n.Add(1)
		case 'Q':
			if !strings.HasPrefix(string(msg[5:]), "-- ping") {
				p.n.Add(1)
			}
		}
		if _, err := up.Write(msg); err != nil {
			return err
		}
	}
}

// readMessage reads one protocol message: a type byte (when typed), then a
// length that counts itself and the body.
func readMessage(r *bufio.Reader, typed bool) ([]byte, error) {
	head := 4
	if typed {
		head = 5
	}
	msg := make([]byte, head)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(msg[head-4:]))
	if n < 4 || n > 1<<30 {
		return nil, fmt.Errorf("message length %d", n)
	}
	msg = append(msg, make([]byte, n-4)...)
	if _, err := io.ReadFull(r, msg[head:]); err != nil {
		return nil, err
	}
	return msg, nil
}
