package smtpclient

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// benchMessage is a 2 KB message with 72-column lines.
func benchMessage() []byte {
	var b bytes.Buffer
	b.WriteString("From: sender@client.test\r\nTo: rcpt@mx.test\r\nSubject: benchmark\r\n\r\n")
	for b.Len() < 2048-74 {
		b.WriteString(strings.Repeat("x", 72))
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkSend sends 2 KB messages one after another over a pooled,
// pipelining connection to an in-process server that discards them.
func BenchmarkSend(b *testing.B) {
	ts := startServer(b, &backend{discard: true}, serverOpts{maxBytes: 1 << 20})
	c := newClient(b, func(o *Options) { o.MaxMessagesPerConn = 1 << 30 })
	msg, d := benchMessage(), ts.dest()
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Send(ctx, d, testEnv, msg); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkSendParallel sends from several goroutines over up to four
// pooled connections.
func BenchmarkSendParallel(b *testing.B) {
	ts := startServer(b, &backend{discard: true}, serverOpts{maxBytes: 1 << 20})
	c := newClient(b, func(o *Options) { o.MaxMessagesPerConn = 1 << 30; o.MaxConnsPerHost = 4 })
	msg, d := benchMessage(), ts.dest()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Send(context.Background(), d, testEnv, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

// goSMTPSend sends one message with go-smtp's client on an open session.
func goSMTPSend(c *smtp.Client, msg []byte) error {
	if err := c.Mail(testEnv.From, nil); err != nil {
		return err
	}
	for _, to := range testEnv.To {
		if err := c.Rcpt(to, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}

// BenchmarkBaselineGoSMTPNewConn is go-smtp's client opening a connection
// per message, as smtp.SendMail does.
func BenchmarkBaselineGoSMTPNewConn(b *testing.B) {
	ts := startServer(b, &backend{discard: true}, serverOpts{maxBytes: 1 << 20})
	msg, addr := benchMessage(), fmt.Sprintf("127.0.0.1:%d", ts.port)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		c, err := smtp.Dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Hello("client.test"); err != nil {
			b.Fatal(err)
		}
		if err := goSMTPSend(c, msg); err != nil {
			b.Fatal(err)
		}
		if err := c.Quit(); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkBaselineGoSMTPReused is go-smtp's client keeping one connection
// and resetting between messages (no pipelining).
func BenchmarkBaselineGoSMTPReused(b *testing.B) {
	ts := startServer(b, &backend{discard: true}, serverOpts{maxBytes: 1 << 20})
	msg := benchMessage()
	c, err := smtp.Dial(fmt.Sprintf("127.0.0.1:%d", ts.port))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Reset(); err != nil {
			b.Fatal(err)
		}
		if err := goSMTPSend(c, msg); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}
