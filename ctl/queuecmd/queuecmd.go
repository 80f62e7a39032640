// Package queuecmd is `postalctl queue`: both sides of the queue next to
// each other. SQL is the system of record (queued_messages rows: total, due,
// locked); Redis carries dispatch (per-stream length, pending, consumers,
// lag; the retry set; dead letters; the inflight hash). `queue` prints the
// totals, `queue ls` the queued rows with whether each is dispatched in
// Redis, and `queue dead` the dead letters with what SQL knows of each.
//
// When Redis does not answer, the SQL side is still printed and the command
// exits 1 with a one-line error; SQL errors exit 1 at once; usage and
// configuration errors exit 2.
package queuecmd

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// redisTimeout bounds the Redis reads of one command.
const redisTimeout = 5 * time.Second

// NewCmd returns the queue command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := newStatsCmd(f, nil)
	cmd.AddCommand(newListCmd(f, nil), newDeadCmd(f, nil), newShapeCmd(f, nil), newRetryCmd(f, nil), newDropCmd(f, nil), newResetCmd(f, nil))
	return cmd
}

// StatsOptions are the parsed arguments of `queue`.
type StatsOptions struct {
	Factory *cli.Factory
	// Watch, when positive, reprints the figures in place at this interval
	// until interrupted (or Count refreshes have been printed).
	Watch time.Duration
	Count int
}

// Stats is the --json output of `queue`.
type Stats struct {
	// SQL counts the queued_messages rows.
	SQL store.QueueCounts `json:"sql"`
	// Redis is the dispatch side; null when Redis did not answer.
	Redis *queue.Stats `json:"redis"`
	// RedisError is why Redis is null.
	RedisError string `json:"redis_error,omitempty"`
}

func newStatsCmd(f *cli.Factory, runF func(context.Context, *StatsOptions) error) *cobra.Command {
	o := &StatsOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Show the queue in SQL and in Redis side by side",
		Long: "Show the queued_messages rows in SQL (total, due now, locked by a worker) beside the Redis\n" +
			"dispatch side: per stream its length, pending entries, consumers and lag; the retry set; the\n" +
			"inflight hash; the number of dead letters. `queue ls` lists the rows, `queue dead` the dead letters.",
		Args: cli.ExactArgs(0, "no arguments (or a verb: ls, dead)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Watch != 0 && o.Watch < 100*time.Millisecond {
				return cli.Usagef("--watch must be at least 100ms (got %s)", o.Watch)
			}
			if o.Count < 0 {
				return cli.Usagef("--count must not be negative (got %d)", o.Count)
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			if o.Watch > 0 {
				return watch(cmd.Context(), o)
			}
			return runStats(cmd.Context(), o)
		},
	}
	cmd.Flags().DurationVar(&o.Watch, "watch", 0, "reprint in place every interval (e.g. 2s) until interrupted")
	cmd.Flags().IntVar(&o.Count, "count", 0, "with --watch, stop after this many refreshes (0: never)")
	return cmd
}

// watch reprints the figures every o.Watch, clearing the terminal first
// when stdout is one, until ctx ends or o.Count refreshes were printed. A
// refresh that fails prints its error and the loop goes on.
func watch(ctx context.Context, o *StatsOptions) error {
	f := o.Factory
	t := time.NewTicker(o.Watch)
	defer t.Stop()
	for i := 1; ; i++ {
		if f.IO.Terminal {
			fmt.Fprint(f.IO.Out, "\x1b[H\x1b[2J")
		}
		if err := runStats(ctx, o); err != nil {
			fmt.Fprintf(f.IO.Out, "error: %v\n", err)
		}
		if !f.JSON {
			fmt.Fprintf(f.IO.Out, "\nRefreshed %s; every %s.\n", cli.FormatTime(f.Now()), o.Watch)
		}
		if o.Count > 0 && i >= o.Count {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func runStats(ctx context.Context, o *StatsOptions) error {
	f := o.Factory
	st, err := f.Store(ctx)
	if err != nil {
		return err
	}
	q, err := newQueue(f)
	if err != nil {
		return err
	}
	counts, err := st.CountQueued(ctx, f.Now())
	if err != nil {
		return err
	}
	out := Stats{SQL: counts}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	stats, rerr := q.Inspect(rctx)
	if rerr == nil {
		out.Redis = &stats
	} else {
		out.RedisError = rerr.Error()
	}
	if err := f.Render(out, func(w io.Writer) { printStats(w, out, f.Now()) }); err != nil {
		return err
	}
	return redisFailed(rerr)
}

func printStats(w io.Writer, s Stats, now time.Time) {
	fmt.Fprintf(w, "SQL:\t%d queued, %d due now, %d locked by a worker\n", s.SQL.Total, s.SQL.Due, s.SQL.Locked)
	if s.Redis == nil {
		fmt.Fprintf(w, "Redis:\tUNREACHABLE: %s\n", s.RedisError)
		return
	}
	next := ""
	if s.Redis.Retry.NextDue != nil {
		next = ", next due " + cli.FormatTime(*s.Redis.Retry.NextDue)
		if d := s.Redis.Retry.NextDue.Sub(now); d > 0 {
			next += fmt.Sprintf(" (in %s)", d.Round(time.Second))
		}
	}
	fmt.Fprintf(w, "Redis:\t%d inflight, %d in the retry set%s, %d dead letters\n", s.Redis.Inflight, s.Redis.Retry.Size, next, s.Redis.Dead)
	fmt.Fprintln(w, "\nSTREAM\tLENGTH\tPENDING\tLAG\tCONSUMERS\tGROUP")
	for _, ss := range s.Redis.Streams {
		group := "ok"
		if !ss.GroupExists {
			group = "missing (re-created by the next read)"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\n", ss.Kind, ss.Length, ss.Pending, ss.Lag, len(ss.Consumers), group)
	}
	if s.Redis.Dead > 0 {
		fmt.Fprintln(w, "\nList the dead letters with `postalctl queue dead`.")
	}
}

// newQueue returns a Queue on the configured Redis (which is not contacted).
func newQueue(f *cli.Factory) (*queue.Queue, error) {
	rdb, keys, err := f.Redis()
	if err != nil {
		return nil, &cli.ConfigError{Err: err}
	}
	return queue.New(queue.Options{Client: rdb, Keys: keys}), nil
}

// redisFailed is the command's error after printing when Redis failed.
func redisFailed(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("cannot reach Redis, so only the SQL side is shown: %w", err)
}

// limitFlag validates a --limit value.
func limitFlag(n int) error {
	if n <= 0 || n > 10000 {
		return cli.Usagef("--limit must be between 1 and 10000 (got %d)", n)
	}
	return nil
}
