package webhook

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
)

// ListOptions are the parsed arguments of `webhook ls`.
type ListOptions struct {
	Factory *cli.Factory
	Path    string
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	return &cobra.Command{
		Use:               "ls ORG/SERVER",
		Aliases:           []string{"list"},
		Short:             "List a server's webhooks",
		Args:              cli.ExactArgs(1, "ORG/SERVER"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runList(cmd.Context(), o)
		},
	}
}

func runList(ctx context.Context, o *ListOptions) error {
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	list, err := st.Webhooks(ctx, srv.ID)
	if err != nil {
		return err
	}
	return o.Factory.Render(list, func(w io.Writer) {
		fmt.Fprintln(w, "UUID\tNAME\tURL\tENABLED\tSIGNED\tEVENTS")
		for _, h := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%t\t%s\n", h.UUID, h.Name, h.URL, h.Enabled, h.Sign, describeEvents(h))
		}
	})
}
