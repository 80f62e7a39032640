package store

import (
	"context"
	"fmt"
	"time"
)

// The scheduled maintenance of the cron role: expiring holds, pruning
// suppressions, releasing stale queue locks and applying message retention.
// Each method is idempotent and works in bounded pages, so a run interrupted
// by a crash or a lost lease is simply finished by the next run.

// StatusHoldCancelled is the status (and delivery status) Postal gives a
// held message whose hold expired without being released.
const StatusHoldCancelled = "HoldCancelled"

// maintenancePage bounds the rows one maintenance statement touches.
const maintenancePage = 1000

const microsPerDay = int64(24 * time.Hour / time.Microsecond)

// ExpireHeldMessages cancels the hold of every message that is Held with
// a hold expiry at or before now, as Postal's expire-held-messages task
// does: the message becomes HoldCancelled (held cleared), gets a
// HoldCancelled delivery row, and any queued row it still has is removed,
// all in one transaction per page. It returns how many messages it
// changed; on error the pages already committed stay committed.
func (s *Store) ExpireHeldMessages(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for {
		n := int64(0)
		err := s.inTx(ctx, func(t tx) error {
			rows, err := t.query(ctx, `SELECT id FROM messages WHERE status = ? AND held = ? AND hold_expiry IS NOT NULL
				AND hold_expiry <= ? ORDER BY id LIMIT ?`, StatusHeld, true, now.UnixMicro(), maintenancePage)
			if err != nil {
				return fmt.Errorf("list expired holds: %w", err)
			}
			ids, err := scanIDs(rows)
			if err != nil {
				return fmt.Errorf("list expired holds: %w", err)
			}
			stamp := s.now().UnixMicro()
			const details = "The hold on this message expired without the message being released."
			for _, id := range ids {
				res, err := t.exec(ctx, `UPDATE messages SET status = ?, held = ?, details = ? WHERE id = ? AND status = ?`,
					StatusHoldCancelled, false, details, id, StatusHeld)
				if err != nil {
					return fmt.Errorf("expire hold of message %d: %w", id, err)
				}
				if k, _ := res.RowsAffected(); k == 0 {
					continue
				}
				if _, err := t.exec(ctx, `INSERT INTO deliveries (message_id, status, details, output, sent_with_ssl, log_id, time, timestamp)
					VALUES (?, ?, ?, '', ?, '', 0, ?)`, id, StatusHoldCancelled, details, false, stamp); err != nil {
					return fmt.Errorf("record expired hold of message %d: %w", id, err)
				}
				if _, err := t.exec(ctx, `DELETE FROM queued_messages WHERE message_id = ?`, id); err != nil {
					return fmt.Errorf("unqueue expired hold %d: %w", id, err)
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("expire held messages: %w", err)
		}
		total += n
		if n < maintenancePage {
			return total, nil
		}
	}
}

// PruneSuppressions deletes suppression list entries whose keep_until is
// at or before now (Postal's automatic removal). It returns how many it
// deleted.
func (s *Store) PruneSuppressions(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM suppressions WHERE keep_until <= ?`, now.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("prune suppressions: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// ReleaseStaleLocks unlocks queued messages that were claimed before
// lockedBefore and are still marked locked (Postal's
// queued_message_lock_stale_days). Postal deletes such messages; we never
// drop work: the lock is cleared and the row keeps its retry_after, so the
// requeuer's reconciliation dispatches it again. A lock is taken for the
// worker's visibility timeout (minutes), so a lock older than lockedBefore
// (a day by default) cannot belong to a worker still at work. It returns
// how many rows it released.
func (s *Store) ReleaseStaleLocks(ctx context.Context, lockedBefore, now time.Time) (int64, error) {
	res, err := s.exec(ctx, `UPDATE queued_messages SET locked_by = NULL, locked_until = NULL, updated_at = ?
		WHERE locked_by IS NOT NULL AND updated_at < ?`, now.UnixMicro(), lockedBefore.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("release stale queue locks: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// RetentionResult reports what ApplyRetention deleted.
type RetentionResult struct {
	// Messages counts message rows deleted (their deliveries go with them).
	Messages int64 `json:"messages"`
	// RawByAge counts raw bodies deleted for being older than every
	// referencing server's raw_message_retention_days.
	RawByAge int64 `json:"raw_by_age"`
	// RawBySize counts raw bodies deleted, oldest first, to bring a
	// server's stored bodies under its raw_message_retention_size (MB).
	RawBySize int64 `json:"raw_by_size"`
}

// ApplyRetention enforces each server's retention settings at now:
// messages older than message_retention_days are deleted; raw bodies older
// than raw_message_retention_days (of every server whose messages use
// them) are deleted, and then the oldest bodies of a server whose bodies
// exceed raw_message_retention_size megabytes. A setting of 0 or less
// keeps everything. Work is never dropped: a message that still has a
// queued row, and a body such a message needs, is kept. A deleted body
// leaves its messages with no raw_message_id (RawMessage then reports
// ErrNotFound). It returns what it deleted, also when it fails part way.
func (s *Store) ApplyRetention(ctx context.Context, now time.Time) (RetentionResult, error) {
	var r RetentionResult
	n, err := s.deleteOldMessages(ctx, now)
	r.Messages = n
	if err != nil {
		return r, err
	}
	n, err = s.deleteOldRawMessages(ctx, now)
	r.RawByAge = n
	if err != nil {
		return r, err
	}
	n, err = s.deleteRawOverSize(ctx)
	r.RawBySize = n
	return r, err
}

func (s *Store) deleteOldMessages(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.exec(ctx, `DELETE FROM messages WHERE id IN (
			SELECT m.id FROM messages m JOIN servers s ON s.id = m.server_id
			WHERE s.message_retention_days > 0 AND m.timestamp < CAST(? AS BIGINT) - s.message_retention_days * CAST(? AS BIGINT)
			AND NOT EXISTS (SELECT 1 FROM queued_messages q WHERE q.message_id = m.id)
			ORDER BY m.id LIMIT ?)`, now.UnixMicro(), microsPerDay, maintenancePage)
		if err != nil {
			return total, fmt.Errorf("delete messages past retention: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < maintenancePage {
			return total, nil
		}
	}
}

func (s *Store) deleteOldRawMessages(ctx context.Context, now time.Time) (int64, error) {
	var minDays int64
	if err := s.queryRow(ctx, `SELECT COALESCE(MIN(raw_message_retention_days), 0) FROM servers
		WHERE raw_message_retention_days > 0`).Scan(&minDays); err != nil {
		return 0, fmt.Errorf("raw message retention: %w", err)
	}
	if minDays <= 0 {
		return 0, nil
	}
	// No body is deleted before the shortest retention of any server; past
	// that, a body goes when no message still needs it: each referencing
	// message's own server retention has passed and none is queued. Bodies
	// whose messages are all gone (message retention) go too.
	oldest := now.UnixMicro() - minDays*microsPerDay
	var total, after int64
	for {
		rows, err := s.query(ctx, `SELECT r.id FROM raw_messages r WHERE r.id > ? AND r.created_at < ?
			AND NOT EXISTS (SELECT 1 FROM messages m JOIN servers s ON s.id = m.server_id WHERE m.raw_message_id = r.id
				AND (s.raw_message_retention_days <= 0 OR m.timestamp >= CAST(? AS BIGINT) - s.raw_message_retention_days * CAST(? AS BIGINT)))
			AND NOT EXISTS (SELECT 1 FROM messages m JOIN queued_messages q ON q.message_id = m.id WHERE m.raw_message_id = r.id)
			ORDER BY r.id LIMIT ?`, after, oldest, now.UnixMicro(), microsPerDay, maintenancePage)
		if err != nil {
			return total, fmt.Errorf("list raw messages past retention: %w", err)
		}
		ids, err := scanIDs(rows)
		if err != nil {
			return total, fmt.Errorf("list raw messages past retention: %w", err)
		}
		n, err := s.deleteRawByID(ctx, ids)
		total += n
		if err != nil {
			return total, err
		}
		if len(ids) < maintenancePage {
			return total, nil
		}
		after = ids[len(ids)-1]
	}
}

func (s *Store) deleteRawOverSize(ctx context.Context) (int64, error) {
	rows, err := s.query(ctx, `SELECT id, raw_message_retention_size FROM servers WHERE raw_message_retention_size > 0 ORDER BY id`)
	if err != nil {
		return 0, fmt.Errorf("raw message size retention: %w", err)
	}
	type limit struct{ server, mb int64 }
	var limits []limit
	for rows.Next() {
		var l limit
		if err := rows.Scan(&l.server, &l.mb); err != nil {
			rows.Close()
			return 0, fmt.Errorf("raw message size retention: %w", err)
		}
		limits = append(limits, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("raw message size retention: %w", err)
	}
	var total int64
	for _, l := range limits {
		// Newest first, the running total of body sizes; every body past
		// the limit goes, unless a queued message still needs it.
		rows, err := s.query(ctx, `SELECT x.id FROM (
				SELECT r.id, SUM(r.size) OVER (ORDER BY r.id DESC) AS running FROM raw_messages r
				WHERE r.id IN (SELECT m.raw_message_id FROM messages m WHERE m.server_id = ? AND m.raw_message_id IS NOT NULL)
			) x WHERE x.running > ?
			AND NOT EXISTS (SELECT 1 FROM messages m JOIN queued_messages q ON q.message_id = m.id WHERE m.raw_message_id = x.id)
			ORDER BY x.id`, l.server, l.mb*1024*1024)
		if err != nil {
			return total, fmt.Errorf("raw message size retention of server %d: %w", l.server, err)
		}
		ids, err := scanIDs(rows)
		if err != nil {
			return total, fmt.Errorf("raw message size retention of server %d: %w", l.server, err)
		}
		n, err := s.deleteRawByID(ctx, ids)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// deleteRawByID deletes raw bodies in chunks; the schema sets the
// referencing messages' raw_message_id to NULL.
func (s *Store) deleteRawByID(ctx context.Context, ids []int64) (int64, error) {
	var total int64
	for start := 0; start < len(ids); start += maintenancePage {
		chunk := ids[start:min(start+maintenancePage, len(ids))]
		res, err := s.exec(ctx, `DELETE FROM raw_messages WHERE id IN (`+placeholders(len(chunk))+`)`, int64Args(chunk)...)
		if err != nil {
			return total, fmt.Errorf("delete raw messages: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// idRows is the part of *sql.Rows that scanIDs uses.
type idRows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}

// scanIDs reads a single int64 column and closes rows.
func scanIDs(rows idRows) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ExtendLocks moves the lock expiry of the given queued messages to until,
// for the rows owner still holds, and returns how many it extended. A
// worker calls it while a slow batch is in flight so that its rows are not
// taken over (and sent a second time) by another worker.
func (s *Store) ExtendLocks(ctx context.Context, owner string, ids []int64, until time.Time) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := append([]any{until.UnixMicro(), owner}, int64Args(ids)...)
	res, err := s.exec(ctx, `UPDATE queued_messages SET locked_until = ? WHERE locked_by = ? AND id IN (`+placeholders(len(ids))+`)`, args...)
	if err != nil {
		return 0, fmt.Errorf("extend locks of %d queued messages: %w", len(ids), err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
