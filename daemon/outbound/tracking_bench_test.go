package outbound

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/libcrypto"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/tracker"
)

// BenchmarkHandleTracking compares the relay rate (batches of 50 messages
// of about 2.5 KB of HTML with 5 links, 2048-bit DKIM through libcrypto,
// SQLite) with open and click tracking off (no Tracker), with a Tracker but
// no track domain for the sender, and with a verified track domain (links
// stored, body rewritten, per message). "-shared" cases are one submission
// with 50 recipients: without a Tracker it is signed once for all.
// "-postgres" cases run on PostgreSQL.
func BenchmarkHandleTracking(b *testing.B) {
	lib, err := libcrypto.Open()
	if err != nil {
		b.Skipf("no libcrypto: %v", err)
	}
	for _, c := range []struct {
		name            string
		tracker, domain bool
		shared, pg      bool
	}{
		{"off", false, false, false, false}, {"on-no-track-domain", true, false, false, false}, {"on-tracked", true, true, false, false},
		{"off-shared", false, false, true, false}, {"on-no-track-domain-shared", true, false, true, false},
		{"off-postgres", false, false, false, true}, {"on-tracked-postgres", true, true, false, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := storetest.SQLite(b)
			if c.pg {
				s = storetest.Postgres(b)
			}
			e := newEnv(b, envOptions{store: s, keyBits: 2048, tune: func(o *Options) {
				o.Keys = lib
				if c.tracker {
					o.Tracker = tracker.NewTracker(s, nil)
				}
			}})
			ctx := context.Background()
			if c.domain {
				td, err := s.CreateTrackDomain(ctx, e.fx.Server.ID, store.NewTrackDomain{DomainID: e.fx.Domain.ID, Name: "click",
					SSLEnabled: true, TrackClicks: true, TrackLoads: true})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.SetTrackDomainVerified(ctx, e.fx.Server.ID, td.UUID, true); err != nil {
					b.Fatal(err)
				}
			}
			e.mail.discard = true
			e.now = time.Now()
			e.p.now = time.Now
			var html strings.Builder
			html.WriteString("<html><body>")
			for i := range 5 {
				fmt.Fprintf(&html, "<p>%s</p><a href=\"https://news.example.com/a/%d?utm_source=mail\">Read more</a>\r\n",
					strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 8), i)
			}
			html.WriteString("</body></html>\r\n")
			const batch = 50
			sent := 0
			for b.Loop() {
				b.StopTimer()
				var subs []store.Submission
				for i := range batch {
					rcpt := fmt.Sprintf("ok%d@dest.test", i)
					nm := store.NewMessage{ServerID: e.fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: rcpt,
						MailFrom: "sender@example.com", DomainID: e.fx.Domain.ID, Queue: true, QueueDomain: "dest.test"}
					if c.shared && i > 0 {
						subs[0].Messages = append(subs[0].Messages, nm)
						continue
					}
					raw := []byte("From: sender@example.com\r\nTo: " + rcpt + "\r\nSubject: bench\r\nMessage-ID: <b" +
						store.RandomToken(6) + "@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.String())
					subs = append(subs, store.Submission{Raw: raw, Messages: []store.NewMessage{nm}})
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
