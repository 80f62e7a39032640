package ipaddress

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/ippool"
)

// ListOptions are the parsed arguments of `ip-address ls`.
type ListOptions struct {
	Factory *cli.Factory
	// Pool limits the list to one pool ("" for all).
	Pool string
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	return &cobra.Command{
		Use:               "ls [POOL]",
		Aliases:           []string{"list"},
		Short:             "List sending addresses, of all pools or one",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: ippool.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Pool = args[0]
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runList(cmd.Context(), o)
		},
	}
}

func runList(ctx context.Context, o *ListOptions) error {
	st, err := o.Factory.Store(ctx)
	if err != nil {
		return err
	}
	var poolID int64
	if o.Pool != "" {
		_, p, err := ippool.Find(ctx, o.Factory, o.Pool)
		if err != nil {
			return err
		}
		poolID = p.ID
	}
	list, err := st.IPAddresses(ctx, poolID)
	if err != nil {
		return err
	}
	return o.Factory.Render(list, func(w io.Writer) {
		fmt.Fprintln(w, "POOL\tIPV4\tIPV6\tHOSTNAME\tPRIORITY")
		for _, a := range list {
			v6 := a.IPv6
			if v6 == "" {
				v6 = "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", a.Pool, a.IPv4, v6, a.Hostname, a.Priority)
		}
	})
}
