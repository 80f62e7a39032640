package queuecmd

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// DeadOptions are the parsed arguments of `queue dead`.
type DeadOptions struct {
	Factory *cli.Factory
	Limit   int
}

// Dead is one dead letter in the --json output of `queue dead`, with what
// SQL knows of the row it named.
type Dead struct {
	queue.DeadLetter
	SQL DeadSQL `json:"sql"`
}

// What SQL knows of a dead letter's row (DeadSQL.State).
const (
	// StateQueued: the queued row still exists, so the worker has not
	// failed it (yet); the requeuer's reconciliation will dispatch it again.
	StateQueued = "queued"
	// StateGone: the row is gone: its message was finished, or the
	// worker failed it after dead-lettering (status HardFail, the reason
	// in its details). The queue entry names only the queued row, so the
	// message cannot be found from the dead letter once the row is gone.
	StateGone = "gone"
	// StateWebhook: the row is a webhook request that still exists.
	StateWebhook = "webhook_request"
)

// DeadSQL is the SQL side of a dead letter.
type DeadSQL struct {
	State string `json:"state"`
	// MessageID, Status and Reason describe the message of a queued row
	// (Reason is the message's details), or for a webhook request its
	// last error.
	MessageID int64  `json:"message_id,omitempty"`
	Status    string `json:"status,omitempty"`
	Attempts  int    `json:"attempts"`
	Reason    string `json:"reason,omitempty"`
}

func newDeadCmd(f *cli.Factory, runF func(context.Context, *DeadOptions) error) *cobra.Command {
	o := &DeadOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "List dead letters (newest first) with what SQL knows of each",
		Long: "List the entries given up on after too many deliveries, newest first, each with the state of its\n" +
			"row in SQL: still queued (it will be dispatched again by reconciliation), gone (the worker marked\n" +
			"its message HardFail; find it with `postalctl message ls ORG/SERVER --status HardFail`), or the\n" +
			"webhook request and its last error.",
		Args: cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := limitFlag(o.Limit); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runDead(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.Limit, "limit", 100, "list at most this many dead letters")
	cmd.AddCommand(newRequeueCmd(f, nil))
	return cmd
}

func runDead(ctx context.Context, o *DeadOptions) error {
	f := o.Factory
	_, out, err := deadWithSQL(ctx, f, o.Limit)
	if err != nil {
		return err
	}
	return f.Render(out, func(w io.Writer) {
		if len(out) == 0 {
			fmt.Fprintln(w, "No dead letters.")
			return
		}
		fmt.Fprintln(w, "TIME\tKIND\tID\tDOMAIN\tDELIVERIES\tREDIS REASON\tSQL")
		for _, d := range out {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", cli.FormatTime(d.Time), d.Kind, d.Job.ID, orDash(d.Job.Domain), d.Count,
				d.Reason, describe(d.SQL))
		}
	})
}

// withSQL looks up the row of every dead letter, in one query per table.
func withSQL(ctx context.Context, st *store.Store, letters []queue.DeadLetter) ([]Dead, error) {
	var queuedIDs, webhookIDs []int64
	for _, d := range letters {
		if d.Kind == queue.Webhooks {
			webhookIDs = append(webhookIDs, d.Job.ID)
		} else {
			queuedIDs = append(queuedIDs, d.Job.ID)
		}
	}
	queued := map[int64]*store.QueuedMessage{}
	messages := map[int64]*store.Message{}
	if len(queuedIDs) > 0 {
		rows, err := st.QueuedByIDs(ctx, queuedIDs)
		if err != nil {
			return nil, err
		}
		var msgIDs []int64
		for _, r := range rows {
			queued[r.ID] = r
			msgIDs = append(msgIDs, r.MessageID)
		}
		msgs, err := st.Messages(ctx, msgIDs)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			messages[m.ID] = m
		}
	}
	hooks := map[int64]*store.WebhookRequest{}
	if len(webhookIDs) > 0 {
		reqs, err := st.WebhookRequests(ctx, webhookIDs)
		if err != nil {
			return nil, err
		}
		for _, r := range reqs {
			hooks[r.ID] = r
		}
	}
	out := make([]Dead, 0, len(letters))
	for _, d := range letters {
		row := Dead{DeadLetter: d, SQL: DeadSQL{State: StateGone}}
		if d.Kind == queue.Webhooks {
			if r := hooks[d.Job.ID]; r != nil {
				row.SQL = DeadSQL{State: StateWebhook, Attempts: r.Attempts, Reason: r.Error}
			}
		} else if q := queued[d.Job.ID]; q != nil {
			row.SQL = DeadSQL{State: StateQueued, MessageID: q.MessageID, Attempts: q.Attempts}
			if m := messages[q.MessageID]; m != nil {
				row.SQL.Status, row.SQL.Reason = m.Status, m.Details
			}
		}
		out = append(out, row)
	}
	return out, nil
}

// describe renders the SQL side of a dead letter for the table.
func describe(s DeadSQL) string {
	switch s.State {
	case StateQueued:
		r := fmt.Sprintf("still queued: message %d (%s, %d attempts)", s.MessageID, s.Status, s.Attempts)
		if s.Reason != "" {
			r += ": " + s.Reason
		}
		return r
	case StateWebhook:
		r := fmt.Sprintf("webhook request, %d attempts", s.Attempts)
		if s.Reason != "" {
			r += ": " + s.Reason
		}
		return r
	default:
		return "row gone: its message finished, or the worker failed it (HardFail)"
	}
}

// deadWithSQL reads the newest limit dead letters and what SQL holds for
// each; it also returns the queue, for acting on them.
func deadWithSQL(ctx context.Context, f *cli.Factory, limit int) (*queue.Queue, []Dead, error) {
	st, err := f.Store(ctx)
	if err != nil {
		return nil, nil, err
	}
	q, err := newQueue(f)
	if err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	letters, err := q.DeadLetters(rctx, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach Redis, where dead letters live: %w", err)
	}
	rows, err := withSQL(ctx, st, letters)
	if err != nil {
		return nil, nil, err
	}
	return q, rows, nil
}
