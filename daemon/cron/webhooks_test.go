package cron_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/cron"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestPruneWebhookRequestsKeepsTheRetentionWindow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		f := storetest.NewFixture(t, s, "example.com", "")
		ids, err := s.InsertWebhookRequests(ctx, []store.NewWebhookRequest{
			{ServerID: f.Server.ID, URL: "https://a.test/", Event: "MessageSent", Payload: `{}`},
			{ServerID: f.Server.ID, URL: "https://a.test/", Event: "MessageSent", Payload: `{}`},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimWebhookRequests(ctx, ids, "w", time.Now(), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		// One attempt 3 days and one 4 days old, with a 3-day retention.
		if _, err := s.RecordWebhookAttempts(ctx, []store.WebhookAttemptOutcome{
			{RequestID: ids[0], Owner: "w", StatusCode: 200, Result: "ok", At: now.Add(-72*time.Hour + time.Minute), Done: true},
			{RequestID: ids[1], Owner: "w", StatusCode: 200, Result: "ok", At: now.Add(-96 * time.Hour), Done: true},
		}); err != nil {
			t.Fatal(err)
		}
		task := cron.PruneWebhookRequestsTask(s, 3, nil, func() time.Time { return now })
		if task.Name != cron.TaskPruneWebhookRequests || task.Every != time.Hour || task.Offset != 45*time.Minute {
			t.Errorf("task = %s every %v at %v", task.Name, task.Every, task.Offset)
		}
		if err := task.Run(ctx); err != nil {
			t.Fatal(err)
		}
		left, err := s.WebhookAttempts(ctx, store.WebhookAttemptFilter{ServerID: f.Server.ID})
		if err != nil || len(left) != 1 || !left[0].CreatedAt.Equal(now.Add(-72*time.Hour+time.Minute)) {
			t.Fatalf("left = %v, %v", left, err)
		}
	})
}
