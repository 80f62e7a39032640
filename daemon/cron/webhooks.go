package cron

import (
	"context"
	"log/slog"
	"time"

	"github.com/postalgo/postal/config"
)

// TaskPruneWebhookRequests is the cron task that prunes the webhook attempt log.
const TaskPruneWebhookRequests = "prune_webhook_requests"

// WebhookLog is what the webhook log pruning needs of the database (package store).
type WebhookLog interface {
	PruneWebhookAttempts(ctx context.Context, before time.Time) (int64, error)
}

// PruneWebhookRequestsTask returns the task that deletes logged webhook
// attempts older than retentionDays (webhooks.log_retention_days; 0 takes
// the default), hourly at :45 as Postal's PruneWebhookRequestsScheduledTask.
// now is the clock (nil: time.Now); log receives how many were deleted.
func PruneWebhookRequestsTask(s WebhookLog, retentionDays int, log *slog.Logger, now func() time.Time) Task {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if retentionDays <= 0 {
		retentionDays = config.Defaults().Webhooks.LogRetentionDays
	}
	return Task{Name: TaskPruneWebhookRequests, Every: time.Hour, Offset: 45 * time.Minute, Run: func(ctx context.Context) error {
		n, err := s.PruneWebhookAttempts(ctx, now().Add(-time.Duration(retentionDays)*24*time.Hour))
		if n > 0 {
			log.Info("pruned webhook attempt log", "attempts", n, "retention_days", retentionDays)
		}
		return err
	}}
}
