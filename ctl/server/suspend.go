package server

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// SuspendOptions are the parsed arguments of `server suspend` and
// `server unsuspend`.
type SuspendOptions struct {
	Factory *cli.Factory
	Path    string
	// Suspend is true for suspend, false for unsuspend.
	Suspend bool
	Reason  string
}

func newSuspendCmd(f *cli.Factory, runF func(context.Context, *SuspendOptions) error, suspend bool) *cobra.Command {
	o := &SuspendOptions{Factory: f, Suspend: suspend}
	cmd := &cobra.Command{
		Use:               "suspend ORG/SERVER",
		Short:             "Suspend a mail server: it neither sends nor accepts mail",
		Args:              cli.ExactArgs(1, "ORG/SERVER"),
		ValidArgsFunction: Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runSuspend(cmd.Context(), o)
		},
	}
	if suspend {
		cmd.Flags().StringVar(&o.Reason, "reason", "", "why the server is suspended")
	} else {
		cmd.Use = "unsuspend ORG/SERVER"
		cmd.Short = "Lift a mail server's suspension"
	}
	return cmd
}

func runSuspend(ctx context.Context, o *SuspendOptions) error {
	st, srv, err := Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	var out *store.Server
	if o.Suspend {
		out, err = st.SuspendServer(ctx, srv.ID, o.Reason)
	} else {
		out, err = st.UnsuspendServer(ctx, srv.ID)
	}
	if err != nil {
		return err
	}
	return o.Factory.Render(out, func(w io.Writer) { printServer(w, out) })
}
