package store

import (
	"context"
	"fmt"
	"strings"
)

// Dropping queued mail in bulk (`postalctl queue drop`, Postfix's
// postsuper -d). A dropped message gets what `message cancel` gives one
// message: its queued row is deleted and it becomes HoldCancelled, with a
// delivery row saying an operator removed it; its body stays for
// inspection. A row a worker holds right now is skipped and reported.

// DropFilter selects what DropQueued drops. Its fields combine with AND;
// at least one of QueuedIDs, Domain, ServerID and Held must be set.
type DropFilter struct {
	// QueuedIDs are queued rows (the ids `queue ls` shows).
	QueuedIDs []int64
	// Domain is a destination domain (queued rows whose domain it is).
	Domain string
	// ServerID limits the drop to one server.
	ServerID int64
	// Held selects held messages (status Held) instead of queued rows;
	// it cannot be combined with QueuedIDs or Domain.
	Held bool
}

// MaxDropIDs caps DropFilter.QueuedIDs.
const MaxDropIDs = 10000

func (f DropFilter) check() error {
	switch {
	case len(f.QueuedIDs) == 0 && f.Domain == "" && f.ServerID == 0 && !f.Held:
		return fmt.Errorf("drop: nothing selected")
	case f.Held && (len(f.QueuedIDs) > 0 || f.Domain != ""):
		return fmt.Errorf("drop: held messages are selected by server only")
	case len(f.QueuedIDs) > MaxDropIDs:
		return fmt.Errorf("drop: %d ids is more than %d", len(f.QueuedIDs), MaxDropIDs)
	}
	return nil
}

// DropTarget is one message DropQueued drops (or would drop).
type DropTarget struct {
	MessageID int64 `json:"message_id"`
	// QueuedID is its queued row, 0 for a held message without one.
	QueuedID int64  `json:"queued_id,omitempty"`
	ServerID int64  `json:"server_id"`
	Scope    string `json:"scope"`
	Domain   string `json:"domain,omitempty"`
	RcptTo   string `json:"rcpt_to"`
}

// DropCandidates returns what DropQueued(f) would drop now, by queued row
// (or message) id, at most limit (1..MaxDropIDs*10) entries, and whether
// more match. Rows a worker holds are included: DropQueued skips them.
func (s *Store) DropCandidates(ctx context.Context, f DropFilter, limit int) ([]DropTarget, bool, error) {
	if err := f.check(); err != nil {
		return nil, false, err
	}
	if limit <= 0 || limit > MaxDropIDs*10 {
		return nil, false, fmt.Errorf("drop: limit %d is not between 1 and %d", limit, MaxDropIDs*10)
	}
	out, err := s.dropTargets(ctx, f, 0, limit+1)
	if err != nil {
		return nil, false, err
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// dropTargets selects up to limit targets with a key above after, in key
// order (queued row id, or message id for held messages).
func (s *Store) dropTargets(ctx context.Context, f DropFilter, after int64, limit int) ([]DropTarget, error) {
	var (
		q    strings.Builder
		args []any
	)
	if f.Held {
		q.WriteString(`SELECT m.id, COALESCE(qm.id, 0), m.server_id, m.scope, COALESCE(qm.domain, ''), m.rcpt_to FROM messages m
			LEFT JOIN queued_messages qm ON qm.message_id = m.id WHERE m.status = ? AND m.id > ?`)
		args = append(args, StatusHeld, after)
		if f.ServerID != 0 {
			q.WriteString(` AND m.server_id = ?`)
			args = append(args, f.ServerID)
		}
		q.WriteString(` ORDER BY m.id LIMIT ?`)
	} else {
		q.WriteString(`SELECT qm.message_id, qm.id, qm.server_id, qm.scope, qm.domain, m.rcpt_to FROM queued_messages qm
			JOIN messages m ON m.id = qm.message_id WHERE qm.id > ?`)
		args = append(args, after)
		if len(f.QueuedIDs) > 0 {
			q.WriteString(` AND qm.id IN (` + placeholders(len(f.QueuedIDs)) + `)`)
			args = append(args, int64Args(f.QueuedIDs)...)
		}
		if f.Domain != "" {
			q.WriteString(` AND qm.domain = ?`)
			args = append(args, strings.ToLower(strings.TrimSpace(f.Domain)))
		}
		if f.ServerID != 0 {
			q.WriteString(` AND qm.server_id = ?`)
			args = append(args, f.ServerID)
		}
		q.WriteString(` ORDER BY qm.id LIMIT ?`)
	}
	args = append(args, limit)
	rows, err := s.query(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("drop: select: %w", err)
	}
	defer rows.Close()
	out := []DropTarget{}
	for rows.Next() {
		var t DropTarget
		if err := rows.Scan(&t.MessageID, &t.QueuedID, &t.ServerID, &t.Scope, &t.Domain, &t.RcptTo); err != nil {
			return nil, fmt.Errorf("drop: select: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("drop: select: %w", err)
	}
	return out, nil
}

// DropResult reports what DropQueued did.
type DropResult struct {
	// Dropped are the messages now HoldCancelled without a queued row.
	Dropped []DropTarget `json:"dropped"`
	// Locked are the targets skipped because a worker holds their row.
	Locked []DropTarget `json:"locked"`
	// More is set when limit stopped the drop before every match.
	More bool `json:"more"`
}

// DropDetails is the details (and delivery details) of a dropped message.
const DropDetails = "Removed from the queue by an operator (queue drop)."

// DropQueued drops what f selects, at most limit (1..MaxDropIDs*10)
// messages, in transactions of up to 1000: each message's queued row is
// deleted unless a worker holds its lock (compare-and-set; such targets are
// reported in Locked), and it becomes HoldCancelled with a delivery row. A
// message whose status changed meanwhile (no longer Held, for Held) is
// left alone. On error the transactions already committed stay committed
// and their targets are in the result.
func (s *Store) DropQueued(ctx context.Context, f DropFilter, limit int) (DropResult, error) {
	res := DropResult{Dropped: []DropTarget{}, Locked: []DropTarget{}}
	if err := f.check(); err != nil {
		return res, err
	}
	if limit <= 0 || limit > MaxDropIDs*10 {
		return res, fmt.Errorf("drop: limit %d is not between 1 and %d", limit, MaxDropIDs*10)
	}
	var after int64
	for done := 0; done < limit; {
		page, err := s.dropTargets(ctx, f, after, min(maintenancePage, limit-done))
		if err != nil {
			return res, err
		}
		if len(page) == 0 {
			return res, nil
		}
		now := s.now()
		var dropped, locked []DropTarget
		err = s.inTx(ctx, func(t tx) error {
			dropped, locked = nil, nil
			for _, d := range page {
				if d.QueuedID != 0 {
					r, err := t.exec(ctx, `DELETE FROM queued_messages WHERE id = ? AND (locked_by IS NULL OR locked_until IS NULL OR locked_until <= ?)`,
						d.QueuedID, now.UnixMicro())
					if err != nil {
						return fmt.Errorf("drop queued row %d: %w", d.QueuedID, err)
					}
					if n, _ := r.RowsAffected(); n == 0 {
						locked = append(locked, d)
						continue
					}
				}
				changed, err := markCancelled(ctx, t, d.MessageID, DropDetails, f.Held, now.UnixMicro())
				if err != nil {
					return err
				}
				if changed { // else released or gone meanwhile
					dropped = append(dropped, d)
				}
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("drop: %w", err)
		}
		res.Dropped = append(res.Dropped, dropped...)
		res.Locked = append(res.Locked, locked...)
		done += len(page)
		last := page[len(page)-1]
		after = last.QueuedID
		if f.Held {
			after = last.MessageID
		}
	}
	more, err := s.dropTargets(ctx, f, after, 1)
	if err != nil {
		return res, err
	}
	res.More = len(more) > 0
	return res, nil
}
