package ipaddress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/ippool"
	"github.com/postalgo/postal/daemon/store"
)

// AddOptions are the parsed arguments of `ip-address add`.
type AddOptions struct {
	Factory  *cli.Factory
	Pool     string
	IPv4     string
	IPv6     string
	Hostname string
	Priority int
}

func newAddCmd(f *cli.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	o := &AddOptions{Factory: f}
	cmd := &cobra.Command{
		Use:               "add POOL IPV4 --hostname HOST [--ipv6 IPV6] [--priority N]",
		Short:             "Add a sending address to a pool",
		Args:              cli.ExactArgs(2, "POOL IPV4"),
		ValidArgsFunction: ippool.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Pool, o.IPv4 = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runAdd(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Hostname, "hostname", "", "the address's host name (its PTR), used in HELO (required)")
	cmd.Flags().StringVar(&o.IPv6, "ipv6", "", "the IPv6 address paired with it")
	cmd.Flags().IntVar(&o.Priority, "priority", 100, "1 to 100: how often this address is chosen relative to the pool's others")
	_ = cmd.MarkFlagRequired("hostname")
	return cmd
}

func runAdd(ctx context.Context, o *AddOptions) error {
	v := validator.New()
	switch {
	case v.Var(o.IPv4, "required,ipv4") != nil:
		return cli.Usagef("%q is not an IPv4 address", o.IPv4)
	case o.IPv6 != "" && v.Var(o.IPv6, "ipv6") != nil:
		return cli.Usagef("--ipv6 %q is not an IPv6 address", o.IPv6)
	case v.Var(o.Hostname, "required,fqdn") != nil:
		return cli.Usagef("--hostname %q is not a fully qualified host name", o.Hostname)
	case o.Priority < 1 || o.Priority > 100:
		return cli.Usagef("--priority %d: want 1 to 100", o.Priority)
	}
	st, p, err := ippool.Find(ctx, o.Factory, o.Pool)
	if err != nil {
		return err
	}
	a, err := st.CreateIPAddress(ctx, store.NewIPAddress{PoolID: p.ID, IPv4: o.IPv4, IPv6: o.IPv6,
		Hostname: strings.ToLower(o.Hostname), Priority: o.Priority})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("IP address %s is already in a pool; list addresses with `postalctl ip-address ls`", o.IPv4)
	}
	if err != nil {
		return err
	}
	return o.Factory.Render(a, func(w io.Writer) { fmt.Fprintf(w, "Added %s (%s) to pool %s.\n", a.IPv4, a.Hostname, a.Pool) })
}
