package message

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// ListOptions are the parsed arguments of `message ls`.
type ListOptions struct {
	Factory *cli.Factory
	Path    string
	Status  string
	Limit   int
}

// statuses are the message statuses --status accepts.
func statuses() []string {
	return []string{store.StatusPending, store.StatusSent, store.StatusSoftFail, store.StatusHardFail, store.StatusHeld,
		store.StatusBounced, store.StatusHoldCancelled, store.StatusProcessed}
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	cmd := &cobra.Command{
		Use:               "ls ORG/SERVER",
		Aliases:           []string{"list"},
		Short:             "List a server's messages, newest first",
		Args:              cli.ExactArgs(1, "ORG/SERVER"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			if o.Limit <= 0 || o.Limit > 10000 {
				return cli.Usagef("--limit must be between 1 and 10000 (got %d)", o.Limit)
			}
			if o.Status != "" {
				i := slices.IndexFunc(statuses(), func(s string) bool { return strings.EqualFold(s, o.Status) })
				if i < 0 {
					return cli.Usagef("--status %q is not a message status (one of %s)", o.Status, strings.Join(statuses(), ", "))
				}
				o.Status = statuses()[i]
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runList(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Status, "status", "", "only messages with this status ("+strings.Join(statuses(), ", ")+")")
	cmd.Flags().IntVar(&o.Limit, "limit", 50, "list at most this many messages")
	return cmd
}

func runList(ctx context.Context, o *ListOptions) error {
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	list, err := st.ServerMessages(ctx, srv.ID, o.Status, o.Limit)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*store.Message{}
	}
	return o.Factory.Render(list, func(w io.Writer) {
		if len(list) == 0 {
			fmt.Fprintln(w, "No messages.")
			return
		}
		fmt.Fprintln(w, "ID\tRECEIVED\tSCOPE\tSTATUS\tFROM\tTO\tSUBJECT")
		for _, m := range list {
			status := m.Status
			if m.Held {
				status += " (held)"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, cli.FormatTime(m.Timestamp), m.Scope, status, m.MailFrom, m.RcptTo, m.Subject)
		}
		if len(list) == o.Limit {
			fmt.Fprintf(w, "\nShowing the newest %d; see more with --limit.\n", o.Limit)
		}
	})
}
