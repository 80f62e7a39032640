package cron

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/store"
)

// Maintenance is what the default tasks need of the database (package
// store).
type Maintenance interface {
	ExpireHeldMessages(ctx context.Context, now time.Time) (int64, error)
	PruneSuppressions(ctx context.Context, now time.Time) (int64, error)
	ReleaseStaleLocks(ctx context.Context, lockedBefore, now time.Time) (int64, error)
	ApplyRetention(ctx context.Context, now time.Time) (store.RetentionResult, error)
}

// Names of the default tasks.
const (
	TaskExpireHeldMessages      = "expire_held_messages"
	TaskTidyQueuedMessages      = "tidy_queued_messages"
	TaskPruneSuppressionLists   = "prune_suppression_lists"
	TaskProcessMessageRetention = "process_message_retention"
)

// DefaultTasks returns the Postal tasks whose data exists, on Postal's
// schedule (times in UTC):
//
//	expire_held_messages       hourly at :15   held messages past their expiry become HoldCancelled
//	tidy_queued_messages       hourly at :45   locks older than postal.queued_message_lock_stale_days
//	                                           are released (Postal deletes the messages; we retry them)
//	prune_suppression_lists    daily at 03:00  suppressions past keep_until are removed
//	process_message_retention  daily at 03:00  messages and raw bodies past each server's retention
//
// The tasks of later features (DNS checks, webhook request pruning, send
// limit notifications, deletions) are added to the list by those features.
// now is the clock (nil: time.Now); log receives what each run changed.
func DefaultTasks(s Maintenance, postal config.Postal, log *slog.Logger, now func() time.Time) []Task {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	staleDays := postal.QueuedMessageLockStaleDays
	if staleDays <= 0 {
		staleDays = config.Defaults().Postal.QueuedMessageLockStaleDays
	}
	return []Task{
		{Name: TaskExpireHeldMessages, Every: time.Hour, Offset: 15 * time.Minute, Run: func(ctx context.Context) error {
			n, err := s.ExpireHeldMessages(ctx, now())
			if n > 0 {
				log.Info("expired held messages", "messages", n)
			}
			return err
		}},
		{Name: TaskTidyQueuedMessages, Every: time.Hour, Offset: 45 * time.Minute, Run: func(ctx context.Context) error {
			t := now()
			n, err := s.ReleaseStaleLocks(ctx, t.Add(-time.Duration(staleDays)*24*time.Hour), t)
			if n > 0 {
				log.Warn("released stale queue locks; the messages will be retried", "messages", n, "stale_days", staleDays)
			}
			return err
		}},
		{Name: TaskPruneSuppressionLists, Every: 24 * time.Hour, Offset: 3 * time.Hour, Run: func(ctx context.Context) error {
			n, err := s.PruneSuppressions(ctx, now())
			if n > 0 {
				log.Info("pruned suppression lists", "entries", n)
			}
			return err
		}},
		{Name: TaskProcessMessageRetention, Every: 24 * time.Hour, Offset: 3 * time.Hour, Run: func(ctx context.Context) error {
			r, err := s.ApplyRetention(ctx, now())
			if r != (store.RetentionResult{}) {
				log.Info("applied message retention", "messages", r.Messages, "raw_by_age", r.RawByAge, "raw_by_size", r.RawBySize)
			}
			if err != nil {
				return fmt.Errorf("message retention: %w", err)
			}
			return nil
		}},
	}
}
