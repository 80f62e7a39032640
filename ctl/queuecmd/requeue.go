package queuecmd

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// RequeueOptions are the parsed arguments of `queue dead requeue`.
type RequeueOptions struct {
	Factory *cli.Factory
	Limit   int
}

// Requeued is the --json output of `queue dead requeue`.
type Requeued struct {
	// Requeued are the letters put back on their streams.
	Requeued []Dead `json:"requeued"`
	// Skipped are the letters left dead because their SQL row is gone.
	Skipped []Dead `json:"skipped"`
}

func newRequeueCmd(f *cli.Factory, runF func(context.Context, *RequeueOptions) error) *cobra.Command {
	o := &RequeueOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "requeue",
		Short: "Put dead letters whose row still exists back on their streams",
		Long: "Give the most recent dead letters (up to --limit) another round: each whose queued row or webhook\n" +
			"request still exists in SQL gets a new stream entry (its delivery count starts again) and leaves the\n" +
			"dead letters. A letter whose row is gone stays: retry its message with `postalctl message retry`.",
		Args: cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := limitFlag(o.Limit); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRequeue(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.Limit, "limit", 100, "consider at most this many dead letters, newest first")
	return cmd
}

func runRequeue(ctx context.Context, o *RequeueOptions) error {
	f := o.Factory
	st, err := f.Store(ctx)
	if err != nil {
		return err
	}
	if err := f.CheckRedisOwner(ctx, st); err != nil {
		return err
	}
	q, rows, err := deadWithSQL(ctx, f, o.Limit)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	out := Requeued{Requeued: []Dead{}, Skipped: []Dead{}}
	for _, d := range rows {
		if d.SQL.State == StateGone {
			out.Skipped = append(out.Skipped, d)
			continue
		}
		if _, err := q.RequeueDead(rctx, d.DeadLetter); err != nil {
			return fmt.Errorf("requeued %d dead letters, then: %w", len(out.Requeued), err)
		}
		out.Requeued = append(out.Requeued, d)
	}
	return f.Render(out, func(w io.Writer) {
		fmt.Fprintf(w, "Requeued %d dead letters; left %d whose row is gone.\n", len(out.Requeued), len(out.Skipped))
		for _, d := range out.Requeued {
			fmt.Fprintf(w, "requeued\t%s\t%d\t%s\n", d.Kind, d.Job.ID, orDash(d.Job.Domain))
		}
		for _, d := range out.Skipped {
			fmt.Fprintf(w, "left\t%s\t%d\t%s\n", d.Kind, d.Job.ID, describe(d.SQL))
		}
	})
}
