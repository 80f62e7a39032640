package server

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// ShowOptions are the parsed arguments of `server show`.
type ShowOptions struct {
	Factory *cli.Factory
	Path    string
}

func newShowCmd(f *cli.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	o := &ShowOptions{Factory: f}
	return &cobra.Command{
		Use:               "show ORG/SERVER",
		Short:             "Show a mail server's settings",
		Args:              cli.ExactArgs(1, "ORG/SERVER"),
		ValidArgsFunction: Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runShow(cmd.Context(), o)
		},
	}
}

func runShow(ctx context.Context, o *ShowOptions) error {
	_, srv, err := Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	return o.Factory.Render(srv, func(w io.Writer) { printServer(w, srv) })
}
