package outbound

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/libcrypto"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// BenchmarkHandle delivers batches of 50 messages of 2 KB, DKIM-signed with a
// 2048-bit key, to an in-process SMTP server that discards them, over pooled
// connections, on SQLite. Storing and claiming the rows is not timed; the
// reads Handle makes are. "own-bodies" gives every message its own body (one
// signature each); "shared-body" is one submission with 50 recipients (one
// signature for all); "own-bodies-1024" signs with a 1024-bit key, the size
// of Postal's own domain keys. Each signs through libcrypto, as postald does,
// and "-crypto_rsa" cases through Go's crypto/rsa for comparison.
func BenchmarkHandle(b *testing.B) {
	var fast KeyHolder // nil when no libcrypto loads
	lib, libErr := libcrypto.Open()
	if libErr == nil {
		fast = lib
	}
	for _, c := range []struct {
		name    string
		shared  bool
		bits    int
		keys    KeyHolder
		journal bool
	}{
		{"own-bodies", false, 2048, fast, false}, {"shared-body", true, 2048, fast, false}, {"own-bodies-1024", false, 1024, fast, false},
		{"own-bodies-crypto_rsa", false, 2048, nil, false}, {"own-bodies-1024-crypto_rsa", false, 1024, nil, false},
		// The sent-journal's cost (records in Redis, as postald keeps them):
		// against "shared-body", where signing does not hide it.
		{"shared-body-journal", true, 2048, fast, true}, {"own-bodies-journal", false, 2048, fast, true},
	} {
		shared := c.shared
		b.Run(c.name, func(b *testing.B) {
			if c.keys == nil && !strings.HasSuffix(c.name, "crypto_rsa") {
				b.Skipf("no libcrypto: %v", libErr)
			}
			e := newEnv(b, envOptions{keyBits: c.bits, tune: func(o *Options) { o.Keys = c.keys }})
			if c.journal {
				j, err := e.q.Journal(queue.Outgoing, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				o := e.o
				o.Keys, o.Journal = c.keys, j
				p, err := New(o)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = p.Close() })
				e.p = p
			}
			e.mail.discard = true
			e.now = time.Now()
			e.p.now = time.Now
			body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 33)
			const batch = 50
			ctx := context.Background()
			sent := 0
			for b.Loop() {
				b.StopTimer()
				var subs []store.Submission
				var msgs []store.NewMessage
				for i := range batch {
					rcpt := fmt.Sprintf("ok%d@dest.test", i)
					nm := store.NewMessage{ServerID: e.fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: rcpt,
						MailFrom: "sender@example.com", DomainID: e.fx.Domain.ID, Queue: true, QueueDomain: "dest.test"}
					raw := []byte("From: sender@example.com\r\nTo: " + rcpt + "\r\nSubject: bench\r\nMessage-ID: <b" +
						store.RandomToken(6) + "@example.com>\r\n\r\n" + body)
					if shared {
						msgs = append(msgs, nm)
						if i == 0 {
							subs = append(subs, store.Submission{Raw: raw})
						}
					} else {
						subs = append(subs, store.Submission{Raw: raw, Messages: []store.NewMessage{nm}})
					}
				}
				if shared {
					subs[0].Messages = msgs
				}
				acc, err := e.s.InsertSubmissions(ctx, subs)
				if err != nil {
					b.Fatal(err)
				}
				var ids []int64
				for _, a := range acc {
					for _, m := range a {
						ids = append(ids, m.QueuedID)
					}
				}
				rows := e.claim(ids)
				b.StartTimer()
				outs := e.p.Handle(ctx, rows)
				b.StopTimer()
				for _, o := range outs {
					if o.Status() != store.StatusSent {
						b.Fatalf("outcome %s %+v", o.Status(), o.Delivery())
					}
				}
				if _, err := e.s.RecordOutcomes(ctx, outs); err != nil {
					b.Fatal(err)
				}
				sent += len(outs)
				b.StartTimer()
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}
