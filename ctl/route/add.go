package route

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/endpoint"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// AddOptions are the parsed arguments of `route add`.
type AddOptions struct {
	Factory  *cli.Factory
	Path     string
	Address  string
	Mode     string
	SpamMode string
	Endpoint string
	// EndpointFlags are the endpoint options (--format, --ssl-mode...).
	EndpointFlags endpoint.Flags
}

func newAddCmd(f *cli.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	o := &AddOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "add ORG/SERVER NAME@DOMAIN --mode MODE [--endpoint ENDPOINT]",
		Short: "Add a route for incoming mail",
		Example: "  postalctl route add acme/mail support@example.com --endpoint http:https://app.example.com/mail\n" +
			"  postalctl route add acme/mail '*@example.com' --mode hold",
		Args:              cli.ExactArgs(2, "ORG/SERVER NAME@DOMAIN"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Address = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runAdd(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Mode, "mode", "", "endpoint, accept, hold, bounce or reject (default: endpoint when --endpoint is given)")
	cmd.Flags().StringVar(&o.SpamMode, "spam-mode", "mark", "mark, quarantine or fail")
	cmd.Flags().StringVar(&o.Endpoint, "endpoint", "", "http:URL, smtp:HOST:PORT, address:ADDRESS or the UUID of an endpoint (postalctl endpoint ls)")
	endpoint.AddFlags(cmd, &o.EndpointFlags)
	return cmd
}

func runAdd(ctx context.Context, o *AddOptions) error {
	if o.Address == store.ReturnPathRouteName {
		return runAddReturnPath(ctx, o)
	}
	name, domain, err := parseAddress(o.Address)
	if err != nil {
		return err
	}
	mode := store.RouteModeEndpoint
	switch {
	case o.Mode != "":
		if mode, err = ParseMode(o.Mode); err != nil {
			return err
		}
	case o.Endpoint == "":
		return cli.Usagef("route add: give --mode (endpoint, accept, hold, bounce or reject) or --endpoint")
	}
	spam, err := ParseSpamMode(o.SpamMode)
	if err != nil {
		return err
	}
	var ep *store.NewEndpoint
	switch {
	case mode == store.RouteModeEndpoint && o.Endpoint == "":
		return cli.Usagef("--mode endpoint needs --endpoint http:URL, smtp:HOST:PORT or address:ADDRESS")
	case mode != store.RouteModeEndpoint && o.Endpoint != "":
		return cli.Usagef("--endpoint is only used with --mode endpoint")
	case o.Endpoint != "":
		if ep, err = endpoint.Parse(o.Endpoint); err != nil {
			return err
		}
	}
	if err := o.EndpointFlags.Apply(ep); err != nil {
		return err
	}
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	d, err := st.ServerDomain(ctx, srv.ID, domain)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("domain %s is not on %s; add it with `postalctl domain add %s %s`", domain, o.Path, o.Path, domain)
	}
	if err != nil {
		return err
	}
	r, err := st.CreateRoute(ctx, srv.ID, store.NewRoute{DomainID: d.ID, Name: name, Mode: mode, SpamMode: spam, Endpoint: ep})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("a route for %s@%s already exists on %s; list routes with `postalctl route ls %s`", name, domain, o.Path, o.Path)
	}
	if err != nil {
		return err
	}
	return o.Factory.Render(r, func(w io.Writer) {
		fmt.Fprintf(w, "Added route %s (%s) on %s: mode %s, spam %s, endpoint %s.\n", r.Address(), r.UUID, o.Path, r.Mode, r.SpamMode, describe(r))
	})
}

// runAddReturnPath creates the server's __returnpath__ route: bounces that
// match no sent message go to its HTTP endpoint, as in Postal.
func runAddReturnPath(ctx context.Context, o *AddOptions) error {
	ep, err := endpoint.Parse(o.Endpoint)
	if err != nil {
		return err
	}
	if ep.Type != store.EndpointHTTP || (o.Mode != "" && !strings.EqualFold(o.Mode, store.RouteModeEndpoint)) {
		return cli.Usagef("the __returnpath__ route needs --endpoint http:URL")
	}
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	r, err := st.CreateReturnPathRoute(ctx, srv.ID, ep.URL)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%s already has a __returnpath__ route; list routes with `postalctl route ls %s`", o.Path, o.Path)
	}
	if err != nil {
		return err
	}
	return o.Factory.Render(r, func(w io.Writer) {
		fmt.Fprintf(w, "Added route __returnpath__ (%s) on %s: unmatched bounces go to %s.\n", r.UUID, o.Path, r.Endpoint)
	})
}
