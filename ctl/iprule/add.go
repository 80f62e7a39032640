package iprule

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/ippool"
	"github.com/postalgo/postal/daemon/store"
)

// AddOptions are the parsed arguments of `ip-rule add`.
type AddOptions struct {
	Factory *cli.Factory
	// Owner is ORG or ORG/SERVER.
	Owner string
	Pool  string
	From  []string
	To    []string
}

func newAddCmd(f *cli.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	o := &AddOptions{Factory: f}
	cmd := &cobra.Command{
		Use:     "add ORG[/SERVER] POOL [--from ADDRESS-OR-DOMAIN,...] [--to ADDRESS-OR-DOMAIN,...]",
		Short:   "Send matching mail of an organisation or server through a pool",
		Example: "  postalctl ip-rule add acme/mail bulk --to gmail.com,yahoo.com",
		Args:    cli.ExactArgs(2, "ORG[/SERVER] POOL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Owner, o.Pool = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runAdd(cmd.Context(), o)
		},
	}
	cmd.Flags().StringSliceVar(&o.From, "from", nil, "sender addresses or domains that match")
	cmd.Flags().StringSliceVar(&o.To, "to", nil, "recipient addresses or domains that match")
	return cmd
}

func runAdd(ctx context.Context, o *AddOptions) error {
	if len(o.From) == 0 && len(o.To) == 0 {
		return cli.Usagef("give --from or --to (addresses or domains the rule matches)")
	}
	from, err := parseMatches("from", o.From)
	if err != nil {
		return err
	}
	to, err := parseMatches("to", o.To)
	if err != nil {
		return err
	}
	own, err := findOwner(ctx, o.Factory, o.Owner)
	if err != nil {
		return err
	}
	_, pool, err := ippool.Find(ctx, o.Factory, o.Pool)
	if err != nil {
		return err
	}
	nr := store.NewIPPoolRule{PoolID: pool.ID, From: from, To: to}
	if own.serverID != 0 {
		nr.ServerID = own.serverID
	} else {
		nr.OrganizationID = own.orgID
	}
	r, err := own.st.CreateIPPoolRule(ctx, nr)
	if err != nil {
		return err
	}
	return o.Factory.Render(r, func(w io.Writer) {
		fmt.Fprintf(w, "Added rule %s for %s: from [%s] to [%s] via pool %s.\n", r.UUID, r.Owner,
			strings.Join(r.From, ", "), strings.Join(r.To, ", "), r.Pool)
	})
}
