package message

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// ListOptions are the parsed arguments of `message ls`.
type ListOptions struct {
	Factory *cli.Factory
	// Path is ORG/SERVER, "" for every server.
	Path string
	// Filter holds every other flag (ServerID is filled from Path).
	Filter store.MessageFilter
	// Since and Until are the raw --since/--until values, resolved against
	// the clock when the command runs.
	Since, Until string
}

// statuses are the message statuses --status accepts.
func statuses() []string {
	return []string{store.StatusPending, store.StatusSent, store.StatusSoftFail, store.StatusHardFail, store.StatusHeld,
		store.StatusBounced, store.StatusHoldCancelled, store.StatusProcessed}
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	fl := &o.Filter
	cmd := &cobra.Command{
		Use:     "ls [ORG/SERVER]",
		Aliases: []string{"list"},
		Short:   "Search messages, newest first (one server's, or every server's)",
		Long: "List messages newest first, filtered by the flags. Pages are keyset pages: the output ends with\n" +
			"the --before value of the next page, so deep pages cost what the first one does.",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Path = args[0]
			}
			if fl.Limit <= 0 || fl.Limit > store.MaxMessagePage {
				return cli.Usagef("--limit must be between 1 and %d (got %d)", store.MaxMessagePage, fl.Limit)
			}
			if fl.Status != "" {
				i := slices.IndexFunc(statuses(), func(s string) bool { return strings.EqualFold(s, fl.Status) })
				if i < 0 {
					return cli.Usagef("--status %q is not a message status (one of %s)", fl.Status, strings.Join(statuses(), ", "))
				}
				fl.Status = statuses()[i]
			}
			if fl.Scope != "" && fl.Scope != store.ScopeOutgoing && fl.Scope != store.ScopeIncoming {
				return cli.Usagef("--scope %q is not %s or %s", fl.Scope, store.ScopeOutgoing, store.ScopeIncoming)
			}
			for _, w := range []string{o.Since, o.Until} {
				if _, err := when(w, time.Now()); err != nil {
					return cli.Usagef("%v", err)
				}
			}
			if err := fl.Validate(); err != nil {
				return cli.Usagef("%v", err)
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runList(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&fl.Status, "status", "", "only messages with this status ("+strings.Join(statuses(), ", ")+")")
	cmd.Flags().StringVar(&fl.Scope, "scope", "", "only outgoing or incoming messages")
	cmd.Flags().BoolVar(&fl.Held, "held", false, "only held messages")
	cmd.Flags().StringVar(&fl.From, "from", "", "only messages with this envelope sender (exact)")
	cmd.Flags().StringVar(&fl.To, "to", "", "only messages to this recipient (exact)")
	cmd.Flags().StringVar(&fl.Subject, "subject", "", "only messages whose subject contains this text")
	cmd.Flags().StringVar(&fl.Tag, "tag", "", "only messages with this tag")
	cmd.Flags().StringVar(&o.Since, "since", "", "only messages received since (a duration back, 2h or 3d, or an RFC 3339 time)")
	cmd.Flags().StringVar(&o.Until, "until", "", "only messages received before (same forms as --since)")
	cmd.Flags().Int64Var(&fl.Before, "before", 0, "only messages with an id below this (the next page's cursor)")
	cmd.Flags().IntVar(&fl.Limit, "limit", 50, "list at most this many messages")
	return cmd
}

// when reads a --since/--until value: "" (unset), a duration back from now
// (90m, 2h, 3d) or an RFC 3339 time.
func when(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		var d int
		if _, err := fmt.Sscanf(n, "%d", &d); err == nil && d >= 0 && d <= 36500 && fmt.Sprint(d) == n {
			return now.Add(-time.Duration(d) * 24 * time.Hour), nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither a duration back from now (90m, 2h, 3d) nor an RFC 3339 time", v)
	}
	return now.Add(-d), nil
}

func runList(ctx context.Context, o *ListOptions) error {
	f := o.Factory
	fl := o.Filter
	var (
		st  *store.Store
		err error
	)
	if o.Path != "" {
		var srv *store.Server
		st, srv, err = server.Find(ctx, f, o.Path)
		if err != nil {
			return err
		}
		fl.ServerID = srv.ID
	} else if st, err = f.Store(ctx); err != nil {
		return err
	}
	now := f.Now()
	fl.Since, _ = when(o.Since, now) // validated in RunE
	fl.Until, _ = when(o.Until, now)
	page, err := st.SearchMessages(ctx, fl)
	if err != nil {
		return err
	}
	list := page.Messages
	return f.Render(list, func(w io.Writer) {
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
		if page.Next != 0 {
			fmt.Fprintf(w, "\nShowing %d; the next page: --before %d.\n", len(list), page.Next)
		}
	})
}
