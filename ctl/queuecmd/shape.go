package queuecmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// ShapeOptions are the parsed arguments of `queue shape`.
type ShapeOptions struct {
	Factory *cli.Factory
	Limit   int
}

func newShapeCmd(f *cli.Factory, runF func(context.Context, *ShapeOptions) error) *cobra.Command {
	o := &ShapeOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "shape",
		Short: "Show the backlog by destination domain and age, as Postfix's qshape",
		Long: "Count the queued_messages rows by destination domain (most first, a TOTAL row on top) in age\n" +
			"buckets: each column counts rows younger than its minutes and older than the previous column's;\n" +
			"the last column counts everything older.",
		Args: cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Limit <= 0 || o.Limit > store.MaxShapeDomains {
				return cli.Usagef("--limit must be between 1 and %d (got %d)", store.MaxShapeDomains, o.Limit)
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runShape(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.Limit, "limit", 50, "show at most this many domains")
	return cmd
}

func runShape(ctx context.Context, o *ShapeOptions) error {
	f := o.Factory
	st, err := f.Store(ctx)
	if err != nil {
		return err
	}
	sh, err := st.QueueShape(ctx, f.Now(), o.Limit)
	if err != nil {
		return err
	}
	return f.Render(sh, func(w io.Writer) {
		head := []string{"DOMAIN", "SCOPE", "T"}
		prev := 0
		for _, b := range sh.Buckets {
			prev = int(b.Minutes())
			head = append(head, fmt.Sprint(prev))
		}
		fmt.Fprintln(w, strings.Join(append(head, fmt.Sprintf("%d+", prev)), "\t"))
		for _, r := range append([]store.ShapeRow{sh.Total}, sh.Domains...) {
			cells := []string{orDash(r.Domain), orDash(r.Scope), fmt.Sprint(r.Total)}
			for _, c := range r.Counts {
				cells = append(cells, fmt.Sprint(c))
			}
			fmt.Fprintln(w, strings.Join(cells, "\t"))
		}
	})
}

// RetryOptions are the parsed arguments of `queue retry`.
type RetryOptions struct {
	Factory *cli.Factory
}

// retryWithin are the due-time bounds `queue retry` counts by.
func retryWithin() []time.Duration {
	return []time.Duration{0, time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour}
}

func newRetryCmd(f *cli.Factory, runF func(context.Context, *RetryOptions) error) *cobra.Command {
	o := &RetryOptions{Factory: f}
	return &cobra.Command{
		Use:   "retry",
		Short: "Count the Redis retry set by due time",
		Long: "Count the entries of the retry set (deliveries waiting for their next attempt) by when they are\n" +
			"due: overdue (the requeuer has not moved them yet), then within each bound, then later.",
		Args: cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRetry(cmd.Context(), o)
		},
	}
}

func runRetry(ctx context.Context, o *RetryOptions) error {
	f := o.Factory
	q, err := newQueue(f)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	buckets, err := q.RetryShape(rctx, f.Now(), retryWithin())
	if err != nil {
		return fmt.Errorf("cannot reach Redis, where the retry set lives: %w", err)
	}
	return f.Render(buckets, func(w io.Writer) {
		fmt.Fprintln(w, "DUE\tENTRIES")
		for i, b := range buckets {
			fmt.Fprintf(w, "%s\t%d\n", dueLabel(i, b), b.Count)
		}
	})
}

func dueLabel(i int, b queue.RetryBucket) string {
	switch {
	case b.Due.IsZero():
		return "later"
	case i == 0:
		return "overdue"
	default:
		return "within " + retryWithin()[i].String()
	}
}
