package server

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// RemoveOptions are the parsed arguments of `server rm`.
type RemoveOptions struct {
	Factory *cli.Factory
	Path    string
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:               "rm ORG/SERVER",
		Aliases:           []string{"remove"},
		Short:             "Remove a mail server and everything it owns (domains, credentials, messages, ...)",
		Args:              cli.ExactArgs(1, "ORG/SERVER"),
		ValidArgsFunction: Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRemove(cmd.Context(), o)
		},
	}
}

func runRemove(ctx context.Context, o *RemoveOptions) error {
	st, srv, err := Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	if err := st.DeleteServer(ctx, srv.ID); err != nil {
		return err
	}
	return RenderDeleted(o.Factory, srv.Path())
}
