package message

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// ReleaseOptions are the parsed arguments of `message release`.
type ReleaseOptions struct {
	Factory *cli.Factory
	Ref     string
}

// Released is the --json output of `message release`.
type Released struct {
	MessageID int64  `json:"message_id"`
	QueuedID  int64  `json:"queued_id"`
	Scope     string `json:"scope"`
	Domain    string `json:"domain"`
	// Dispatched says whether the dispatch entry was added to Redis. When it
	// was not, the queued row is still due and the requeuer's
	// reconciliation dispatches it; DispatchError says why.
	Dispatched    bool   `json:"dispatched"`
	DispatchError string `json:"dispatch_error,omitempty"`
}

func newReleaseCmd(f *cli.Factory, runF func(context.Context, *ReleaseOptions) error) *cobra.Command {
	o := &ReleaseOptions{Factory: f}
	return &cobra.Command{
		Use:   "release ID|TOKEN",
		Short: "Release a held message: queue it again, skipping the hold checks",
		Long: "Queue a held message again, due now and flagged manual so that delivery skips the checks that\n" +
			"held it, then dispatch it. The release is durable once the database has it: if Redis cannot\n" +
			"take the dispatch entry, the requeuer's reconciliation dispatches the row shortly.",
		Args: cli.ExactArgs(1, "a message ID or TOKEN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRelease(cmd.Context(), o)
		},
	}
}

func runRelease(ctx context.Context, o *ReleaseOptions) error {
	f := o.Factory
	st, m, err := find(ctx, f, o.Ref)
	if err != nil {
		return err
	}
	if err := f.CheckRedisOwner(ctx, st); err != nil {
		return err
	}
	rdb, keys, err := f.Redis()
	if err != nil {
		return &cli.ConfigError{Err: err}
	}
	q, err := st.ReleaseHeld(ctx, m.ID)
	switch {
	case errors.Is(err, store.ErrNotHeld):
		return fmt.Errorf("message %d is not held (status %s); only held messages can be released", m.ID, m.Status)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("message %d is already queued; see it with `postalctl message show %d`", m.ID, m.ID)
	case err != nil:
		return err
	}
	out := Released{MessageID: m.ID, QueuedID: q.ID, Scope: q.Scope, Domain: q.Domain, Dispatched: true}
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kind, ok := queue.KindOfScope(q.Scope)
	if !ok {
		out.Dispatched, out.DispatchError = false, fmt.Sprintf("unknown scope %q", q.Scope)
	} else if err := queue.New(queue.Options{Client: rdb, Keys: keys}).Enqueue(ectx, kind, queue.Job{ID: q.ID, Domain: q.Domain}); err != nil {
		out.Dispatched, out.DispatchError = false, err.Error()
	}
	return f.Render(out, func(w io.Writer) {
		fmt.Fprintf(w, "Released message %d (queued row %d, %s to %s).\n", out.MessageID, out.QueuedID, out.Scope, orDash(out.Domain))
		if out.Dispatched {
			fmt.Fprintln(w, "Dispatched: a worker will deliver it now.")
			return
		}
		fmt.Fprintf(w, "Not dispatched (%s): the row is due, and the requeuer's reconciliation will dispatch it.\n", out.DispatchError)
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
