package credential

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// ListOptions are the parsed arguments of `credential ls`.
type ListOptions struct {
	Factory *cli.Factory
	Path    string
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	return &cobra.Command{
		Use:               "ls ORG/SERVER",
		Aliases:           []string{"list"},
		Short:             "List a server's credentials (keys are never shown, only their first characters)",
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
	list, err := st.Credentials(ctx, srv.ID, "")
	if err != nil {
		return err
	}
	if list == nil {
		list = []*store.Credential{}
	}
	return o.Factory.Render(list, func(w io.Writer) {
		fmt.Fprintln(w, "UUID\tTYPE\tNAME\tKEY\tHOLD\tLAST USED")
		for _, c := range list {
			hold := "no"
			if c.Hold {
				hold = "yes"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.UUID, c.Type, c.Name, describeKey(c), hold, cli.FormatTime(c.LastUsedAt))
		}
	})
}
