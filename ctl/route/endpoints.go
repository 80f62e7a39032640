package route

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// newEndpointCmd is `route endpoint`: a route's additional endpoints (as
// in Postal, a route in mode Endpoint delivers each message to its primary
// endpoint and, as one more message each, to every additional endpoint).
func newEndpointCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "endpoint", Short: "Manage a route's additional endpoints"}
	cmd.AddCommand(newEndpointAddCmd(f, nil), newEndpointListCmd(f, nil), newEndpointRemoveCmd(f, nil))
	return cmd
}

// EndpointOptions are the parsed arguments of `route endpoint add` and
// `route endpoint rm`.
type EndpointOptions struct {
	Factory *cli.Factory
	Path    string
	// Route is the route's UUID or NAME@DOMAIN.
	Route string
	// Endpoint is the UUID of one of the server's endpoints.
	Endpoint string
}

// EndpointListOptions are the parsed arguments of `route endpoint ls`.
type EndpointListOptions struct {
	Factory *cli.Factory
	Path    string
	Route   string
}

func newEndpointAddCmd(f *cli.Factory, runF func(context.Context, *EndpointOptions) error) *cobra.Command {
	o := &EndpointOptions{Factory: f}
	return &cobra.Command{
		Use:   "add ORG/SERVER ROUTE ENDPOINT-UUID",
		Short: "Give a route in mode endpoint an additional endpoint",
		Example: "  postalctl endpoint add acme/mail http:https://archive.example.com/in\n" +
			"  postalctl route endpoint add acme/mail support@example.com 0b5b9d56-...",
		Args:              cli.ExactArgs(3, "ORG/SERVER, a route UUID or NAME@DOMAIN and an endpoint UUID (postalctl endpoint ls)"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Route, o.Endpoint = args[0], args[1], args[2]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runEndpointAdd(cmd.Context(), o)
		},
	}
}

func newEndpointRemoveCmd(f *cli.Factory, runF func(context.Context, *EndpointOptions) error) *cobra.Command {
	o := &EndpointOptions{Factory: f}
	return &cobra.Command{
		Use:               "rm ORG/SERVER ROUTE ENDPOINT-UUID",
		Aliases:           []string{"remove"},
		Short:             "Take an additional endpoint off a route (the endpoint stays)",
		Args:              cli.ExactArgs(3, "ORG/SERVER, a route UUID or NAME@DOMAIN and an endpoint UUID"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Route, o.Endpoint = args[0], args[1], args[2]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runEndpointRemove(cmd.Context(), o)
		},
	}
}

func newEndpointListCmd(f *cli.Factory, runF func(context.Context, *EndpointListOptions) error) *cobra.Command {
	o := &EndpointListOptions{Factory: f}
	return &cobra.Command{
		Use:               "ls ORG/SERVER ROUTE",
		Aliases:           []string{"list"},
		Short:             "List a route's additional endpoints",
		Args:              cli.ExactArgs(2, "ORG/SERVER and a route UUID or NAME@DOMAIN"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Route = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runEndpointList(cmd.Context(), o)
		},
	}
}

// findRoute resolves path and ref to the store, the server and the route,
// with an error that says what to do next.
func findRoute(ctx context.Context, f *cli.Factory, path, ref string) (*store.Store, *store.Server, *store.Route, error) {
	st, srv, err := server.Find(ctx, f, path)
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := find(ctx, st, srv.ID, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, fmt.Errorf("route %s not found on %s; list routes with `postalctl route ls %s`", ref, path, path)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return st, srv, r, nil
}

func runEndpointAdd(ctx context.Context, o *EndpointOptions) error {
	st, srv, r, err := findRoute(ctx, o.Factory, o.Path, o.Route)
	if err != nil {
		return err
	}
	a, err := st.AddAdditionalEndpoint(ctx, srv.ID, r.ID, o.Endpoint)
	switch {
	case errors.Is(err, store.ErrNotEndpointRoute):
		return fmt.Errorf("route %s is in mode %s: only a route in mode endpoint has additional endpoints", o.Route, r.Mode)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("endpoint %s is already an additional endpoint of %s", o.Endpoint, o.Route)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("endpoint %s not found on %s; list endpoints with `postalctl endpoint ls %s`", o.Endpoint, o.Path, o.Path)
	case err != nil:
		return err
	}
	return o.Factory.Render(a, func(w io.Writer) {
		fmt.Fprintf(w, "Added %s %s to %s: each message for it is also delivered there, as a message of its own.\n",
			strings.TrimSuffix(a.Type, "Endpoint"), a.Target, o.Route)
	})
}

func runEndpointRemove(ctx context.Context, o *EndpointOptions) error {
	st, srv, r, err := findRoute(ctx, o.Factory, o.Path, o.Route)
	if err != nil {
		return err
	}
	err = st.RemoveAdditionalEndpoint(ctx, srv.ID, r.ID, o.Endpoint)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("endpoint %s is not an additional endpoint of %s; list them with `postalctl route endpoint ls %s %s`",
			o.Endpoint, o.Route, o.Path, o.Route)
	}
	if err != nil {
		return err
	}
	return server.RenderDeleted(o.Factory, "additional endpoint "+o.Endpoint+" of "+o.Route)
}

func runEndpointList(ctx context.Context, o *EndpointListOptions) error {
	st, _, r, err := findRoute(ctx, o.Factory, o.Path, o.Route)
	if err != nil {
		return err
	}
	list, err := st.AdditionalEndpoints(ctx, r.ID)
	if err != nil {
		return err
	}
	return o.Factory.Render(list, func(w io.Writer) {
		fmt.Fprintln(w, "UUID\tTYPE\tTARGET")
		for _, a := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\n", a.UUID, strings.TrimSuffix(a.Type, "Endpoint"), a.Target)
		}
	})
}
