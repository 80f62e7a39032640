package message

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/tui/source"
)

// ActOptions are the parsed arguments of `message retry|hold|cancel|delete`.
type ActOptions struct {
	Factory *cli.Factory
	Action  source.Action
	Ref     string
}

// actVerbs describes the action verbs; they share one command and run
// through the same code as the console's actions (source.Live.Act).
func actVerbs() []struct {
	action      source.Action
	short, long string
} {
	return []struct {
		action      source.Action
		short, long string
	}{
		{source.ActRetry, "Retry a message now: make its queued row due (or requeue a failed message) and dispatch it",
			"Make a queued message due now and dispatch it; a SoftFail or HardFail message that has left the queue\n" +
				"is queued again. A message a worker is delivering right now is refused: try again in a moment."},
		{source.ActHold, "Hold a queued message: take it out of the queue until released or cancelled",
			"Take a queued message out of the queue and hold it (status Held, no expiry). Release it with\n" +
				"`postalctl message release`, or end it with `postalctl message cancel`."},
		{source.ActCancel, "Remove a queued or held message from the queue for good (status HoldCancelled)",
			"Delete the message's queued row and mark it HoldCancelled, with a delivery row saying an operator\n" +
				"removed it. The message and its body stay for inspection."},
		{source.ActDelete, "Delete a message with its deliveries and queued row",
			"Delete the message, its deliveries and its queued row. The stored body stays until retention removes\n" +
				"it (other recipients of the same submission share it)."},
	}
}

func newActCmds(f *cli.Factory, runF func(context.Context, *ActOptions) error) []*cobra.Command {
	var cmds []*cobra.Command
	for _, v := range actVerbs() {
		o := &ActOptions{Factory: f, Action: v.action}
		cmds = append(cmds, &cobra.Command{
			Use:   string(v.action) + " ID|TOKEN",
			Short: v.short,
			Long:  v.long,
			Args:  cli.ExactArgs(1, "a message ID or TOKEN"),
			RunE: func(cmd *cobra.Command, args []string) error {
				o.Ref = args[0]
				if runF != nil {
					return runF(cmd.Context(), o)
				}
				return runAct(cmd.Context(), o)
			},
		})
	}
	return cmds
}

func runAct(ctx context.Context, o *ActOptions) error {
	f := o.Factory
	st, m, err := find(ctx, f, o.Ref)
	if err != nil {
		return err
	}
	rdb, keys, err := f.Redis()
	if err != nil {
		return &cli.ConfigError{Err: err}
	}
	live := source.NewLive(source.LiveOptions{Store: st, Redis: rdb, Keys: keys, Now: f.Now})
	res, err := live.Act(ctx, o.Action, m.ID)
	if err != nil {
		return actError(o.Action, m, err)
	}
	return f.Render(res, func(w io.Writer) { printResult(w, res) })
}

// actError turns a refused action into one line that says what to do.
func actError(a source.Action, m *store.Message, err error) error {
	var taken *redisconn.PrefixTakenError
	switch {
	case errors.As(err, &taken):
		return &cli.ConfigError{Err: err}
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("message %d is being delivered right now; try again in a moment", m.ID)
	case errors.Is(err, store.ErrNotQueued):
		return fmt.Errorf("message %d is not queued (status %s); nothing to %s", m.ID, m.Status, a)
	case errors.Is(err, store.ErrNotRetryable):
		return fmt.Errorf("message %d has status %s; only queued, SoftFail and HardFail messages can be retried", m.ID, m.Status)
	case errors.Is(err, store.ErrConflict) && a == source.ActRetry:
		return fmt.Errorf("message %d is held; release it with `postalctl message release %d`", m.ID, m.ID)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("message %d no longer exists", m.ID)
	}
	return err
}

func printResult(w io.Writer, r source.Result) {
	switch r.Action {
	case source.ActHold:
		fmt.Fprintf(w, "Held message %d: it stays out of the queue until released or cancelled.\n", r.MessageID)
	case source.ActCancel:
		fmt.Fprintf(w, "Removed message %d from the queue (HoldCancelled).\n", r.MessageID)
	case source.ActDelete:
		fmt.Fprintf(w, "Deleted message %d.\n", r.MessageID)
	default:
		fmt.Fprintf(w, "Message %d is due now (queued row %d).\n", r.MessageID, r.QueuedID)
		if r.Dispatched {
			fmt.Fprintln(w, "Dispatched: a worker will deliver it now.")
			return
		}
		fmt.Fprintf(w, "Not dispatched (%s): the row is due, and the requeuer's reconciliation will dispatch it.\n", r.DispatchError)
	}
}
