package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// BenchmarkRecordWebhookAttempts records one successful attempt per
// transaction, as the webhook worker's completer does while attempts
// trickle in one at a time (a relay with a webhook per message), on SQLite
// and PostgreSQL. Besides wall time it reports CPU per op as
// BenchmarkHotPaths does: go-µs/op and, on PostgreSQL, pg-µs/op.
func BenchmarkRecordWebhookAttempts(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			s, admin := benchStore(b, be)
			fx, hook := hookFixture(b, s)
			payload := `{"message":{"id":12345,"token":"AbCdEfGh12345678","direction":"outgoing","message_id":"abc@example.com",` +
				`"to":"rcpt@example.net","from":"sender@example.com","subject":"Hello","timestamp":1700000000.123456,"spam_status":"NotChecked",` +
				`"tag":null},"status":"Sent","details":"Message for rcpt@example.net accepted by mx.example.net","output":"250 2.0.0 OK",` +
				`"sent_with_ssl":true,"timestamp":1700000001.5,"time":0.41}`
			var ids []int64
			for len(ids) < b.N {
				news := make([]store.NewWebhookRequest, min(500, b.N-len(ids)))
				for i := range news {
					news[i] = store.NewWebhookRequest{ServerID: fx.Server.ID, WebhookID: hook.ID, URL: hook.URL, Event: "MessageSent", Payload: payload}
				}
				got, err := s.InsertWebhookRequests(ctx, news)
				if err != nil {
					b.Fatal(err)
				}
				ids = append(ids, got...)
			}
			now := time.Now().Add(time.Second)
			for start := 0; start < len(ids); start += 500 {
				chunk := ids[start:min(start+500, len(ids))]
				if got, err := s.ClaimWebhookRequests(ctx, chunk, "w1", now, now.Add(time.Hour)); err != nil || len(got) != len(chunk) {
					b.Fatalf("claim = %d, %v", len(got), err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			defer meter(b, admin)()
			for i := range b.N {
				applied, err := s.RecordWebhookAttempts(ctx, []store.WebhookAttemptOutcome{{RequestID: ids[i], Owner: "w1",
					StatusCode: 200, Result: "ok", Duration: time.Millisecond, At: now, Done: true, Success: true}})
				if err != nil || !applied[0] {
					b.Fatalf("record = %v, %v", applied, err)
				}
			}
		})
	}
}
