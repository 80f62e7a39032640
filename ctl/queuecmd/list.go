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

// ListOptions are the parsed arguments of `queue ls`.
type ListOptions struct {
	Factory *cli.Factory
	Limit   int
}

// Row is one queued_messages row in the --json output of `queue ls`.
type Row struct {
	*store.QueuedMessage
	// Dispatched says whether Redis has the row in a stream, pending list
	// or the retry set (its inflight field exists); null when Redis did not
	// answer or the scope names no stream. A due, unlocked row that is not
	// dispatched is re-dispatched by the requeuer's reconciliation.
	Dispatched *bool `json:"dispatched"`
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List queued messages (oldest first) and whether each is dispatched in Redis",
		Args:    cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := limitFlag(o.Limit); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runList(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.Limit, "limit", 100, "list at most this many rows")
	return cmd
}

func runList(ctx context.Context, o *ListOptions) error {
	f := o.Factory
	st, err := f.Store(ctx)
	if err != nil {
		return err
	}
	q, err := newQueue(f)
	if err != nil {
		return err
	}
	list, err := st.QueuedMessages(ctx, 0, o.Limit)
	if err != nil {
		return err
	}
	rows := make([]Row, len(list))
	byKind := map[queue.Kind][]int64{}
	for i, m := range list {
		rows[i] = Row{QueuedMessage: m}
		if k, ok := queue.KindOfScope(m.Scope); ok {
			byKind[k] = append(byKind[k], m.ID)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	var rerr error
	for _, k := range queue.Kinds() {
		if len(byKind[k]) == 0 || rerr != nil {
			continue
		}
		missing, err := q.Missing(rctx, k, byKind[k])
		if err != nil {
			rerr = err
			continue
		}
		gone := map[int64]bool{}
		for _, id := range missing {
			gone[id] = true
		}
		for i := range rows {
			if rk, _ := queue.KindOfScope(rows[i].Scope); rk == k {
				d := !gone[rows[i].ID]
				rows[i].Dispatched = &d
			}
		}
	}
	if rerr != nil {
		for i := range rows {
			rows[i].Dispatched = nil
		}
	}
	now := f.Now()
	if err := f.Render(rows, func(w io.Writer) {
		if len(rows) == 0 {
			fmt.Fprintln(w, "The queue is empty.")
			return
		}
		fmt.Fprintln(w, "ID\tMESSAGE\tSCOPE\tDOMAIN\tATTEMPTS\tRETRY AFTER\tLOCKED BY\tDISPATCHED")
		for _, r := range rows {
			due := cli.FormatTime(r.RetryAfter)
			if !r.RetryAfter.After(now) {
				due = "due"
			}
			locked := "-"
			if r.LockedBy != "" && r.LockedUntil.After(now) {
				locked = r.LockedBy
			}
			fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.MessageID, r.Scope, orDash(r.Domain), r.Attempts, due, locked,
				yesNo(r.Dispatched))
		}
		if len(rows) == o.Limit {
			fmt.Fprintf(w, "\nShowing the first %d rows; see more with --limit.\n", o.Limit)
		}
	}); err != nil {
		return err
	}
	return redisFailed(rerr)
}

func yesNo(b *bool) string {
	switch {
	case b == nil:
		return "?"
	case *b:
		return "yes"
	default:
		return "no"
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
