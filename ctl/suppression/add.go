package suppression

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// AddOptions are the parsed arguments of `suppression add`.
type AddOptions struct {
	Factory *cli.Factory
	Path    string
	Address string
	Reason  string
	// Days the entry is kept; 0 takes
	// postal.default_suppression_list_automatic_removal_days.
	Days int
}

func newAddCmd(f *cli.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	o := &AddOptions{Factory: f}
	cmd := &cobra.Command{
		Use:               "add ORG/SERVER ADDRESS",
		Short:             "Suppress an address (adding it again renews the entry)",
		Args:              cli.ExactArgs(2, "ORG/SERVER ADDRESS"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Address = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runAdd(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Reason, "reason", "added by an administrator", "why the address is suppressed")
	cmd.Flags().IntVar(&o.Days, "days", 0, "days to keep it (default: postal.default_suppression_list_automatic_removal_days)")
	return cmd
}

func runAdd(ctx context.Context, o *AddOptions) error {
	addr, err := address(o.Address)
	if err != nil {
		return err
	}
	if o.Days < 0 {
		return cli.Usagef("--days %d: want 1 or more", o.Days)
	}
	cfg, err := o.Factory.Config()
	if err != nil {
		return err
	}
	days := o.Days
	if days == 0 {
		days = cfg.Postal.DefaultSuppressionListAutomaticRemovalDays
	}
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	until := o.Factory.Now().Add(time.Duration(days) * 24 * time.Hour)
	if err := st.AddSuppressions(ctx, []store.NewSuppression{{ServerID: srv.ID, Address: addr, Reason: o.Reason, KeepUntil: until}}); err != nil {
		return err
	}
	s, err := st.ServerSuppression(ctx, srv.ID, addr)
	if err != nil {
		return err
	}
	return o.Factory.Render(s, func(w io.Writer) {
		fmt.Fprintf(w, "Suppressed %s on %s until %s.\n", s.Address, o.Path, cli.FormatTime(s.KeepUntil))
	})
}
