package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestWebhookRequestClaimAttemptAndLog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx, hook := hookFixture(t, s)
		ids, err := s.InsertWebhookRequests(ctx, []store.NewWebhookRequest{
			{ServerID: fx.Server.ID, WebhookID: hook.ID, URL: hook.URL, Event: "MessageSent", Payload: `{"a":1}`},
			{ServerID: fx.Server.ID, WebhookID: hook.ID, URL: hook.URL, Event: "MessageHeld", Payload: `{"b":2}`},
			{ServerID: fx.Server.ID, URL: "https://other.test/", Event: "MessageLoaded", Payload: `{"c":3}`},
		})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		until := now.Add(time.Minute)
		got, err := s.ClaimWebhookRequests(ctx, ids, "w1", now, until)
		if err != nil || len(got) != 3 || got[0].ID != ids[0] || got[2].ID != ids[2] {
			t.Fatalf("claim = %v, %v", got, err)
		}
		// A second claimer gets nothing while the lock lives, everything once it expired.
		if again, err := s.ClaimWebhookRequests(ctx, ids, "w2", now, until); err != nil || len(again) != 0 {
			t.Fatalf("second claim = %v, %v", again, err)
		}
		locks, err := s.WebhookRequestLocks(ctx, append([]int64{999999}, ids...))
		if err != nil || len(locks) != 3 || locks[0].LockedBy != "w1" || !locks[0].LockedUntil.Equal(until.Truncate(time.Microsecond)) {
			t.Fatalf("locks = %+v, %v", locks, err)
		}
		at := now.Add(time.Second)
		retryAt := now.Add(2 * time.Minute)
		applied, err := s.RecordWebhookAttempts(ctx, []store.WebhookAttemptOutcome{
			{RequestID: ids[0], Owner: "w1", StatusCode: 200, Result: "ok", Duration: 15 * time.Millisecond, Response: "thanks", At: at, Done: true, Success: true},
			{RequestID: ids[1], Owner: "w1", StatusCode: 500, Result: "http_error", Response: "oops", At: at, RetryAfter: retryAt, Error: "Couldn't send to URL. Code received was 500"},
			{RequestID: ids[2], Owner: "intruder", StatusCode: 200, Result: "ok", At: at, Done: true},
		})
		if err != nil || !applied[0] || !applied[1] || applied[2] {
			t.Fatalf("applied = %v, %v", applied, err)
		}
		reqs, err := s.WebhookRequests(ctx, ids)
		if err != nil || len(reqs) != 2 {
			t.Fatalf("requests left = %v, %v", reqs, err)
		}
		if r := reqs[0]; r.ID != ids[1] || r.Attempts != 1 || !r.RetryAfter.Equal(retryAt.Truncate(time.Microsecond)) || r.Error == "" {
			t.Errorf("retried request = %+v", r)
		}
		if l, _ := s.WebhookRequestLocks(ctx, ids[1:2]); l[0].LockedBy != "" {
			t.Errorf("retried request still locked: %+v", l[0])
		}
		// Not due before retry_after; due after.
		if c, _ := s.ClaimWebhookRequests(ctx, ids[1:2], "w3", now, until); len(c) != 0 {
			t.Error("claimed before its retry time")
		}
		if c, _ := s.ClaimWebhookRequests(ctx, ids[1:2], "w3", retryAt, retryAt.Add(time.Minute)); len(c) != 1 || c[0].Attempts != 1 {
			t.Errorf("claim after retry time = %v", c)
		}
		hooks, _ := s.Webhooks(ctx, fx.Server.ID)
		if hooks[0].LastUsedAt.IsZero() {
			t.Error("last_used_at not stamped on success")
		}
		log, err := s.WebhookAttempts(ctx, store.WebhookAttemptFilter{ServerID: fx.Server.ID})
		if err != nil || len(log) != 2 {
			t.Fatalf("log = %v, %v", log, err)
		}
		if a := log[0]; a.Event != "MessageHeld" || a.StatusCode != 500 || !a.WillRetry || a.Attempt != 1 || a.Payload != `{"b":2}` ||
			a.Response != "oops" || a.WebhookID != hook.ID || a.URL != hook.URL || a.RequestUUID != reqs[0].UUID {
			t.Errorf("newest attempt = %+v", a)
		}
		if a := log[1]; a.Result != "ok" || a.WillRetry || a.Duration != 15*time.Millisecond || !a.CreatedAt.Equal(at.Truncate(time.Microsecond)) {
			t.Errorf("oldest attempt = %+v", a)
		}
		failed, _ := s.WebhookAttempts(ctx, store.WebhookAttemptFilter{ServerID: fx.Server.ID, Failed: true})
		other, _ := s.WebhookAttempts(ctx, store.WebhookAttemptFilter{ServerID: fx.Server.ID, WebhookID: hook.ID + 100})
		byUUID, _ := s.WebhookAttempts(ctx, store.WebhookAttemptFilter{ServerID: fx.Server.ID, RequestUUID: reqs[0].UUID})
		if len(byUUID) != 1 || byUUID[0].RequestUUID != reqs[0].UUID {
			t.Errorf("by uuid: %+v", byUUID)
		}
		if len(failed) != 1 || failed[0].Result != "http_error" || len(other) != 0 {
			t.Errorf("filters: failed %d, other webhook %d", len(failed), len(other))
		}
		c, err := s.CountWebhookRequests(ctx, retryAt)
		if err != nil || c.Total != 2 || c.Locked != 1 {
			t.Errorf("counts = %+v, %v", c, err)
		}

		// Release without an attempt; abandon logs a dead attempt.
		if n, err := s.ReleaseWebhookRequests(ctx, []store.WebhookRelease{{RequestID: ids[1], Owner: "w3", Due: retryAt}, {RequestID: ids[2], Owner: "w3", Due: retryAt}}); err != nil || n != 1 {
			t.Fatalf("release = %d, %v", n, err)
		}
		if l, _ := s.WebhookRequestLocks(ctx, ids[1:2]); l[0].LockedBy != "" || !l[0].RetryAfter.Equal(retryAt.Truncate(time.Microsecond)) {
			t.Errorf("released request = %+v", l[0])
		}
		if err := s.AbandonWebhookRequest(ctx, ids[2], "given up"); err != nil {
			t.Fatal(err)
		}
		if err := s.AbandonWebhookRequest(ctx, ids[2], "again"); err != nil {
			t.Fatal(err)
		}
		log, _ = s.WebhookAttempts(ctx, store.WebhookAttemptFilter{ServerID: fx.Server.ID})
		if len(log) != 3 || log[0].Result != "dead" || log[0].Response != "given up" || log[0].WebhookID != 0 {
			t.Errorf("after abandon: %+v", log[0])
		}

		// Pruning keeps what is younger than the cut.
		if n, err := s.PruneWebhookAttempts(ctx, now.Add(-time.Hour)); err != nil || n != 0 {
			t.Fatalf("prune of nothing old = %d, %v", n, err)
		}
		if n, err := s.PruneWebhookAttempts(ctx, at.Add(time.Microsecond)); err != nil || n != 3 {
			t.Fatalf("prune = %d, %v", n, err)
		}
		if log, _ = s.WebhookAttempts(ctx, store.WebhookAttemptFilter{ServerID: fx.Server.ID}); len(log) != 0 {
			t.Errorf("after prune %d attempts", len(log))
		}
	})
}

func TestWebhookRequestsAndAttemptsOfAMessage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test")
		ids, err := s.InsertWebhookRequests(ctx, []store.NewWebhookRequest{
			{ServerID: fx.Server.ID, MessageID: acc[0].MessageID, URL: "https://h.test/", Event: "MessageSent", Payload: `{}`},
			{ServerID: fx.Server.ID, MessageID: acc[0].MessageID, URL: "https://h.test/", Event: "MessageLoaded", Payload: `{}`},
			{ServerID: fx.Server.ID, MessageID: acc[1].MessageID, URL: "https://h.test/", Event: "MessageSent", Payload: `{}`},
			{ServerID: fx.Server.ID, URL: "https://h.test/", Event: "DomainDNSError", Payload: `{}`},
		})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if _, err := s.ClaimWebhookRequests(ctx, ids[:1], "w", now, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordWebhookAttempts(ctx, []store.WebhookAttemptOutcome{{RequestID: ids[0], Owner: "w", StatusCode: 200,
			Result: "ok", At: now, Done: true, Success: true}}); err != nil {
			t.Fatal(err)
		}
		pending, err := s.WebhookRequestsOfMessage(ctx, acc[0].MessageID)
		if err != nil || len(pending) != 1 || pending[0].ID != ids[1] {
			t.Fatalf("pending of message = %+v, %v", pending, err)
		}
		log, err := s.WebhookAttempts(ctx, store.WebhookAttemptFilter{MessageID: acc[0].MessageID})
		if err != nil || len(log) != 1 || log[0].Event != "MessageSent" || log[0].StatusCode != 200 {
			t.Fatalf("attempts of message = %+v, %v", log, err)
		}
		if log, err := s.WebhookAttempts(ctx, store.WebhookAttemptFilter{MessageID: acc[1].MessageID}); err != nil || len(log) != 0 {
			t.Fatalf("attempts of the other message = %+v, %v", log, err)
		}
	})
}

// One batch with several successful attempts of one webhook stamps its
// last_used_at once, with the latest of them, never moving it back; an
// attempt refused for a lost lock stamps nothing.
func TestRecordWebhookAttemptsStampsLatestSuccess(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx, hook := hookFixture(t, s)
		other, err := s.CreateWebhook(ctx, fx.Server.ID, store.NewWebhook{Name: "o", URL: "https://o.test/x", AllEvents: true, Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		var news []store.NewWebhookRequest
		for range 4 {
			news = append(news, store.NewWebhookRequest{ServerID: fx.Server.ID, WebhookID: hook.ID, URL: hook.URL, Event: "MessageSent", Payload: `{}`})
		}
		news = append(news, store.NewWebhookRequest{ServerID: fx.Server.ID, WebhookID: other.ID, URL: other.URL, Event: "MessageSent", Payload: `{}`})
		ids, err := s.InsertWebhookRequests(ctx, news)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().Add(time.Second).Truncate(time.Second) // after retry_after, whole microseconds
		if got, err := s.ClaimWebhookRequests(ctx, ids, "w1", now, now.Add(time.Minute)); err != nil || len(got) != len(ids) {
			t.Fatalf("claim = %v, %v", got, err)
		}
		at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
		applied, err := s.RecordWebhookAttempts(ctx, []store.WebhookAttemptOutcome{
			{RequestID: ids[0], Owner: "w1", StatusCode: 200, Result: "ok", At: at(3), Done: true, Success: true},
			{RequestID: ids[1], Owner: "w1", StatusCode: 200, Result: "ok", At: at(7), Done: true, Success: true},
			{RequestID: ids[2], Owner: "w1", StatusCode: 200, Result: "ok", At: at(5), Done: true, Success: true},
			{RequestID: ids[3], Owner: "w1", StatusCode: 500, Result: "http_error", At: at(9), RetryAfter: at(99)},
			{RequestID: ids[4], Owner: "lost", StatusCode: 200, Result: "ok", At: at(9), Done: true, Success: true},
		})
		if err != nil || !applied[0] || !applied[1] || !applied[2] || !applied[3] || applied[4] {
			t.Fatalf("applied = %v, %v", applied, err)
		}
		lastUsed := func() map[int64]time.Time {
			t.Helper()
			hooks, err := s.Webhooks(ctx, fx.Server.ID)
			if err != nil {
				t.Fatal(err)
			}
			m := map[int64]time.Time{}
			for _, h := range hooks {
				m[h.ID] = h.LastUsedAt
			}
			return m
		}
		if got := lastUsed(); !got[hook.ID].Equal(at(7)) || !got[other.ID].IsZero() {
			t.Fatalf("last_used_at = %v, want %v for the webhook and none for the other", got, at(7))
		}
		// A later batch with an older success leaves the stamp alone.
		if got, err := s.ClaimWebhookRequests(ctx, ids[3:4], "w2", at(99), at(200)); err != nil || len(got) != 1 {
			t.Fatalf("claim again = %v, %v", got, err)
		}
		if applied, err := s.RecordWebhookAttempts(ctx, []store.WebhookAttemptOutcome{
			{RequestID: ids[3], Owner: "w2", StatusCode: 200, Result: "ok", At: at(1), Done: true, Success: true},
		}); err != nil || !applied[0] {
			t.Fatalf("applied = %v, %v", applied, err)
		}
		if got := lastUsed(); !got[hook.ID].Equal(at(7)) {
			t.Fatalf("last_used_at = %v after an older success, want %v", got[hook.ID], at(7))
		}
		if reqs, err := s.WebhookRequests(ctx, ids); err != nil || len(reqs) != 1 || reqs[0].ID != ids[4] {
			t.Fatalf("requests left = %v, %v (want only the lost one)", reqs, err)
		}
	})
}

// Batches recorded one after another and at once (each on its own
// connection) are each applied exactly once. On SQLite recording prepares
// its statements once per store, not per call (PostgreSQL sends a batch as
// one pipeline, its statements kept prepared by pgx per connection).
func TestRecordWebhookAttemptsReusesStatements(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx, hook := hookFixture(t, s)
		const batches, per = 8, 5
		var news []store.NewWebhookRequest
		for range batches * per {
			news = append(news, store.NewWebhookRequest{ServerID: fx.Server.ID, WebhookID: hook.ID, URL: hook.URL, Event: "MessageSent", Payload: `{}`})
		}
		ids, err := s.InsertWebhookRequests(ctx, news)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().Add(time.Second)
		if got, err := s.ClaimWebhookRequests(ctx, ids, "w1", now, now.Add(time.Minute)); err != nil || len(got) != len(ids) {
			t.Fatalf("claim = %d rows, %v", len(got), err)
		}
		record := func(b int) error {
			var outs []store.WebhookAttemptOutcome
			for i := b * per; i < (b+1)*per; i++ {
				o := store.WebhookAttemptOutcome{RequestID: ids[i], Owner: "w1", StatusCode: 200, Result: "ok", At: now, Done: true, Success: true}
				if i%2 == 1 {
					o = store.WebhookAttemptOutcome{RequestID: ids[i], Owner: "w1", StatusCode: 500, Result: "http_error", At: now,
						RetryAfter: now.Add(time.Minute), Error: "Couldn't send to URL. Code received was 500"}
				}
				outs = append(outs, o)
			}
			applied, err := s.RecordWebhookAttempts(ctx, outs)
			if err != nil {
				return err
			}
			for i, ok := range applied {
				if !ok {
					return fmt.Errorf("outcome %d of batch %d not applied", i, b)
				}
			}
			return nil
		}
		if err := record(0); err != nil {
			t.Fatal(err)
		}
		prepared := s.CachedStatements()
		if prepared == 0 && s.Driver() == store.SQLite {
			t.Fatal("no statement kept prepared after recording")
		}
		errs := make(chan error, batches-1)
		for b := 1; b < batches; b++ {
			go func() { errs <- record(b) }()
		}
		for b := 1; b < batches; b++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if got := s.CachedStatements(); got != prepared {
			t.Fatalf("%d statements prepared after %d batches, %d after the first", got, batches, prepared)
		}
		log, err := s.WebhookAttempts(ctx, store.WebhookAttemptFilter{ServerID: fx.Server.ID, Limit: 1000})
		if err != nil || len(log) != batches*per {
			t.Fatalf("attempt log = %d rows, %v; want %d", len(log), err, batches*per)
		}
		left, err := s.WebhookRequests(ctx, ids)
		if err != nil || len(left) != batches*per/2 {
			t.Fatalf("requests left = %d, %v; want the %d retried", len(left), err, batches*per/2)
		}
		for _, r := range left {
			if r.Attempts != 1 || r.Error == "" {
				t.Fatalf("retried request = %+v", r)
			}
		}
	})
}

// A batch is all or nothing: when one outcome's statements fail (here
// PostgreSQL refuses a NUL byte in text), no attempt of the batch is
// logged and every request stays claimed, to be sent again.
func TestRecordWebhookAttemptsIsAtomic(t *testing.T) {
	s := storetest.Postgres(t)
	ctx := context.Background()
	fx := storetest.NewFixture(t, s, "example.com", "")
	ids, err := s.InsertWebhookRequests(ctx, []store.NewWebhookRequest{
		{ServerID: fx.Server.ID, URL: "https://h.test/", Event: "MessageSent", Payload: `{}`},
		{ServerID: fx.Server.ID, URL: "https://h.test/", Event: "MessageSent", Payload: `{}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Second)
	if got, err := s.ClaimWebhookRequests(ctx, ids, "w1", now, now.Add(time.Minute)); err != nil || len(got) != 2 {
		t.Fatalf("claim = %v, %v", got, err)
	}
	applied, err := s.RecordWebhookAttempts(ctx, []store.WebhookAttemptOutcome{
		{RequestID: ids[0], Owner: "w1", StatusCode: 200, Result: "ok", At: now, Done: true, Success: true},
		{RequestID: ids[1], Owner: "w1", StatusCode: 200, Result: "ok", Response: "a\x00b", At: now, Done: true, Success: true},
	})
	if err == nil {
		t.Fatalf("applied = %v, want an error", applied)
	}
	if log, err := s.WebhookAttempts(ctx, store.WebhookAttemptFilter{ServerID: fx.Server.ID}); err != nil || len(log) != 0 {
		t.Fatalf("attempt log = %+v, %v; want none", log, err)
	}
	locks, err := s.WebhookRequestLocks(ctx, ids)
	if err != nil || len(locks) != 2 || locks[0].LockedBy != "w1" || locks[1].LockedBy != "w1" {
		t.Fatalf("locks = %+v, %v; want both still claimed by w1", locks, err)
	}
}

// hookFixture is storetest's fixture with an all-events webhook on its server.
func hookFixture(t testing.TB, s *store.Store) (storetest.Fixture, *store.Webhook) {
	t.Helper()
	fx := storetest.NewFixture(t, s, "example.com", "")
	hook, err := s.CreateWebhook(context.Background(), fx.Server.ID, store.NewWebhook{Name: "h", URL: "https://h.test/x", AllEvents: true, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	return fx, hook
}
