package iprule

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// ListOptions are the parsed arguments of `ip-rule ls`.
type ListOptions struct {
	Factory *cli.Factory
	Owner   string
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	return &cobra.Command{
		Use:     "ls ORG[/SERVER]",
		Aliases: []string{"list"},
		Short:   "List the IP pool rules of an organisation or a server",
		Args:    cli.ExactArgs(1, "ORG[/SERVER]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Owner = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runList(cmd.Context(), o)
		},
	}
}

func runList(ctx context.Context, o *ListOptions) error {
	own, err := findOwner(ctx, o.Factory, o.Owner)
	if err != nil {
		return err
	}
	list, err := own.st.IPPoolRules(ctx, own.orgID, own.serverID)
	if err != nil {
		return err
	}
	return o.Factory.Render(list, func(w io.Writer) {
		fmt.Fprintln(w, "UUID\tOWNER\tPOOL\tFROM\tTO")
		for _, r := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.UUID, r.Owner, r.Pool, dash(r.From), dash(r.To))
		}
	})
}

func dash(list []string) string {
	if len(list) == 0 {
		return "-"
	}
	return strings.Join(list, ",")
}
