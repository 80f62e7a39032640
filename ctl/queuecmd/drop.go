package queuecmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// DropOptions are the parsed arguments of `queue drop`.
type DropOptions struct {
	Factory *cli.Factory
	// IDs are queued-row ids (the ID column of `queue ls`).
	IDs    []int64
	Domain string
	// Server is ORG/SERVER, "" for every server.
	Server string
	Held   bool
	Dead   bool
	Limit  int
	Yes    bool
}

// Dropped is the --json output of `queue drop`.
type Dropped struct {
	// Dropped are the messages removed from the queue (now HoldCancelled).
	Dropped []store.DropTarget `json:"dropped"`
	// Locked are the messages left alone because a worker holds them.
	Locked []store.DropTarget `json:"locked"`
	// More is set when --limit stopped the drop before every match.
	More bool `json:"more"`
	// DeadLetters counts the dead letters deleted (--dead).
	DeadLetters int `json:"dead_letters"`
	// Redis is what was removed from the streams, the retry set and the
	// inflight hash; RedisError says why it is incomplete.
	Redis      queue.Forgotten `json:"redis"`
	RedisError string          `json:"redis_error,omitempty"`
}

// maxDrop bounds --limit.
const maxDrop = 100000

func newDropCmd(f *cli.Factory, runF func(context.Context, *DropOptions) error) *cobra.Command {
	o := &DropOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "drop [ID...]",
		Short: "Remove queued or held messages from the queue (as postsuper -d)",
		Long: "Remove messages from the queue for good, as `postalctl message cancel` does for one: the queued row\n" +
			"is deleted, the message becomes HoldCancelled with a delivery row saying an operator removed it, and\n" +
			"its entries leave Redis (stream, retry set, inflight). The body stays for inspection. Select by queued\n" +
			"row ids (the ID column of `queue ls`), --domain (destination), --server, or --held (every held message,\n" +
			"optionally of one --server); ids, --domain and --server combine. --dead deletes the dead letters (up to\n" +
			"--limit) and drops the queued rows they still have. A message a worker is delivering right now is left\n" +
			"alone and listed. Asks for confirmation unless --yes; without a terminal, --yes is required.",
		RunE: func(cmd *cobra.Command, args []string) error {
			o.IDs = nil
			for _, a := range args {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil || id <= 0 {
					return cli.Usagef("%q is not a queued row id (see `postalctl queue ls`)", a)
				}
				o.IDs = append(o.IDs, id)
			}
			switch {
			case len(o.IDs) > store.MaxDropIDs:
				return cli.Usagef("at most %d ids at once (got %d)", store.MaxDropIDs, len(o.IDs))
			case o.Dead && (len(o.IDs) > 0 || o.Domain != "" || o.Server != "" || o.Held):
				return cli.Usagef("--dead cannot be combined with ids, --domain, --server or --held")
			case o.Held && (len(o.IDs) > 0 || o.Domain != ""):
				return cli.Usagef("--held selects by --server only; it cannot be combined with ids or --domain")
			case !o.Dead && !o.Held && len(o.IDs) == 0 && o.Domain == "" && o.Server == "":
				return cli.Usagef("nothing selected: give queued row ids, --domain, --server, --held or --dead")
			case o.Limit <= 0 || o.Limit > maxDrop:
				return cli.Usagef("--limit must be between 1 and %d (got %d)", maxDrop, o.Limit)
			case o.Dead && o.Limit > 10000:
				return cli.Usagef("with --dead, --limit must be between 1 and 10000 (got %d)", o.Limit)
			}
			if o.Server != "" {
				if _, _, err := server.SplitPath(o.Server); err != nil {
					return err
				}
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runDrop(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Domain, "domain", "", "drop the queued rows for this destination domain")
	cmd.Flags().StringVar(&o.Server, "server", "", "drop the queued rows (or with --held, the held messages) of ORG/SERVER")
	cmd.Flags().BoolVar(&o.Held, "held", false, "drop every held message")
	cmd.Flags().BoolVar(&o.Dead, "dead", false, "delete the dead letters and drop the rows they still have")
	cmd.Flags().IntVar(&o.Limit, "limit", 10000, "drop at most this many messages (or dead letters)")
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// ErrNotConfirmed is returned when the operator answers anything but y.
var ErrNotConfirmed = errors.New("not confirmed; nothing changed")

// confirm asks the operator to confirm what is about to happen. Without a
// terminal it refuses unless --yes was given.
func confirm(f *cli.Factory, yes bool, what string) error {
	if yes {
		return nil
	}
	if !f.IO.Terminal {
		return cli.Usagef("refusing to %s without confirmation: add --yes", what)
	}
	fmt.Fprintf(f.IO.Out, "About to %s. Proceed? [y/N] ", what)
	line, err := bufio.NewReader(f.IO.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read confirmation: %w", err)
	}
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return ErrNotConfirmed
	}
	return nil
}

func runDrop(ctx context.Context, o *DropOptions) error {
	f := o.Factory
	if o.Dead {
		return runDropDead(ctx, o)
	}
	filter := store.DropFilter{QueuedIDs: o.IDs, Domain: o.Domain, Held: o.Held}
	var st *store.Store
	var err error
	if o.Server != "" {
		var srv *store.Server
		if st, srv, err = server.Find(ctx, f, o.Server); err != nil {
			return err
		}
		filter.ServerID = srv.ID
	} else if st, err = f.Store(ctx); err != nil {
		return err
	}
	if err := f.CheckRedisOwner(ctx, st); err != nil {
		return err
	}
	q, err := newQueue(f)
	if err != nil {
		return err
	}
	cands, more, err := st.DropCandidates(ctx, filter, o.Limit)
	if err != nil {
		return err
	}
	out := Dropped{Dropped: []store.DropTarget{}, Locked: []store.DropTarget{}}
	if len(cands) == 0 {
		return f.Render(out, func(w io.Writer) { fmt.Fprintln(w, "Nothing matches; nothing dropped.") })
	}
	what := fmt.Sprintf("drop %d messages (first: message %d to %s)", len(cands), cands[0].MessageID, cands[0].RcptTo)
	if more {
		what = fmt.Sprintf("drop the first %d matching messages (--limit; more match)", len(cands))
	}
	if err := confirm(o.Factory, o.Yes, what); err != nil {
		return err
	}
	res, err := st.DropQueued(ctx, filter, o.Limit)
	out.Dropped, out.Locked, out.More = res.Dropped, res.Locked, res.More
	if err != nil {
		if len(out.Dropped) > 0 {
			return fmt.Errorf("dropped %d messages, then: %w", len(out.Dropped), err)
		}
		return err
	}
	rerr := forget(ctx, q, out.Dropped, &out)
	if err := f.Render(out, func(w io.Writer) { printDropped(w, out) }); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("dropped in SQL, but some Redis entries are left (a worker that reads one finds the row gone and acks it): %w", rerr)
	}
	return nil
}

// forget removes the dropped rows' Redis entries, one call per stream.
func forget(ctx context.Context, q *queue.Queue, dropped []store.DropTarget, out *Dropped) error {
	byKind := map[queue.Kind][]queue.Job{}
	for _, d := range dropped {
		if d.QueuedID == 0 {
			continue
		}
		if k, ok := queue.KindOfScope(d.Scope); ok {
			byKind[k] = append(byKind[k], queue.Job{ID: d.QueuedID, Domain: d.Domain})
		}
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	for _, k := range queue.Kinds() {
		if len(byKind[k]) == 0 {
			continue
		}
		got, err := q.Forget(rctx, k, byKind[k]...)
		out.Redis.Entries += got.Entries
		out.Redis.Retries += got.Retries
		out.Redis.Inflight += got.Inflight
		if err != nil {
			out.RedisError = err.Error()
			return err
		}
	}
	return nil
}

func runDropDead(ctx context.Context, o *DropOptions) error {
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
	out := Dropped{Dropped: []store.DropTarget{}, Locked: []store.DropTarget{}}
	if len(rows) == 0 {
		return f.Render(out, func(w io.Writer) { fmt.Fprintln(w, "No dead letters; nothing dropped.") })
	}
	if err := confirm(o.Factory, o.Yes, fmt.Sprintf("delete %d dead letters and drop the queued rows they still have", len(rows))); err != nil {
		return err
	}
	var ids []int64
	var letters []queue.DeadLetter
	for _, d := range rows {
		letters = append(letters, d.DeadLetter)
		if d.SQL.State == StateQueued {
			ids = append(ids, d.Job.ID)
		}
	}
	if len(ids) > 0 {
		res, err := st.DropQueued(ctx, store.DropFilter{QueuedIDs: ids}, len(ids))
		out.Dropped, out.Locked = res.Dropped, res.Locked
		if err != nil {
			return err
		}
	}
	rerr := forget(ctx, q, out.Dropped, &out)
	if rerr == nil {
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		defer cancel()
		out.DeadLetters, rerr = q.DropDead(rctx, letters...)
		if rerr != nil {
			out.RedisError = rerr.Error()
		}
	}
	if err := f.Render(out, func(w io.Writer) { printDropped(w, out) }); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("cannot finish in Redis: %w", rerr)
	}
	return nil
}

func printDropped(w io.Writer, out Dropped) {
	fmt.Fprintf(w, "Dropped %d messages (now HoldCancelled)", len(out.Dropped))
	if out.DeadLetters > 0 {
		fmt.Fprintf(w, "; deleted %d dead letters", out.DeadLetters)
	}
	fmt.Fprintf(w, "; removed %d stream entries, %d retries, %d inflight marks from Redis.\n", out.Redis.Entries, out.Redis.Retries,
		out.Redis.Inflight)
	if len(out.Dropped) > 0 {
		fmt.Fprintln(w, "MESSAGE\tQUEUED\tSCOPE\tDOMAIN\tTO")
		for _, d := range out.Dropped {
			queued := "-"
			if d.QueuedID != 0 {
				queued = strconv.FormatInt(d.QueuedID, 10)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", d.MessageID, queued, d.Scope, orDash(d.Domain), d.RcptTo)
		}
	}
	for _, d := range out.Locked {
		fmt.Fprintf(w, "Left message %d (queued row %d): a worker is delivering it right now; try again in a moment.\n", d.MessageID, d.QueuedID)
	}
	if out.More {
		fmt.Fprintln(w, "More messages match: run the command again (or raise --limit).")
	}
}
