// Package endpoint is `postalctl endpoint`: add, list and remove a server's
// HTTP, SMTP and address endpoints, which routes deliver incoming mail to
// (`route add --endpoint UUID`). Removing an endpoint switches the routes
// that used it to mode Reject, as Postal does. It also owns the parsing of
// endpoint specifications and options that `route add` shares.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// NewCmd returns the endpoint command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "endpoint", Short: "Manage a server's endpoints for incoming mail"}
	cmd.AddCommand(newAddCmd(f, nil), newListCmd(f, nil), newRemoveCmd(f, nil))
	return cmd
}

// AddOptions are the parsed arguments of `endpoint add`.
type AddOptions struct {
	Factory  *cli.Factory
	Path     string
	Endpoint string
	Name     string
	Flags    Flags
}

func newAddCmd(f *cli.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	o := &AddOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "add ORG/SERVER http:URL|smtp:HOST:PORT|address:ADDRESS",
		Short: "Add an endpoint that routes can deliver to",
		Example: "  postalctl endpoint add acme/mail http:https://app.example.com/mail --format raw\n" +
			"  postalctl endpoint add acme/mail smtp:mx.example.net:465 --ssl-mode tls",
		Args:              cli.ExactArgs(2, "ORG/SERVER and an endpoint"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Endpoint = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runAdd(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Name, "name", "", "a name to list it by (default the URL or host name)")
	AddFlags(cmd, &o.Flags)
	return cmd
}

func runAdd(ctx context.Context, o *AddOptions) error {
	ep, err := Parse(o.Endpoint)
	if err != nil {
		return err
	}
	if ep.UUID != "" {
		return cli.Usagef("endpoint add: want http:URL, smtp:HOST:PORT or address:ADDRESS, not %q", o.Endpoint)
	}
	if err := o.Flags.Apply(ep); err != nil {
		return err
	}
	ep.Name = o.Name
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	e, err := st.CreateEndpoint(ctx, srv.ID, *ep)
	if err != nil {
		return err
	}
	return o.Factory.Render(e, func(w io.Writer) {
		fmt.Fprintf(w, "Added %s %s (%s) on %s; use it with `postalctl route add %s NAME@DOMAIN --endpoint %s`.\n",
			e.Type, e.Target, e.UUID, o.Path, o.Path, e.UUID)
	})
}

// ListOptions are the parsed arguments of `endpoint ls`.
type ListOptions struct {
	Factory *cli.Factory
	Path    string
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	return &cobra.Command{
		Use:               "ls ORG/SERVER",
		Aliases:           []string{"list"},
		Short:             "List a server's endpoints",
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
	list, err := st.Endpoints(ctx, srv.ID)
	if err != nil {
		return err
	}
	return o.Factory.Render(list, func(w io.Writer) {
		fmt.Fprintln(w, "UUID\tTYPE\tNAME\tTARGET\tOPTIONS\tROUTES")
		for _, e := range list {
			opts := e.Options
			if opts == "" {
				opts = "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", e.UUID, e.Type, e.Name, e.Target, opts, e.Routes)
		}
	})
}

// RemoveOptions are the parsed arguments of `endpoint rm`.
type RemoveOptions struct {
	Factory *cli.Factory
	Path    string
	UUID    string
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:               "rm ORG/SERVER UUID",
		Aliases:           []string{"remove"},
		Short:             "Remove an endpoint (routes that used it reject mail from then on)",
		Args:              cli.ExactArgs(2, "ORG/SERVER and an endpoint UUID"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.UUID = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRemove(cmd.Context(), o)
		},
	}
}

func runRemove(ctx context.Context, o *RemoveOptions) error {
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	n, err := st.DeleteEndpoint(ctx, srv.ID, o.UUID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("endpoint %s not found on %s; list endpoints with `postalctl endpoint ls %s`", o.UUID, o.Path, o.Path)
	}
	if err != nil {
		return err
	}
	type removed struct {
		UUID           string `json:"uuid"`
		RoutesRejected int    `json:"routes_rejected"`
	}
	return o.Factory.Render(removed{o.UUID, n}, func(w io.Writer) {
		fmt.Fprintf(w, "Removed endpoint %s from %s; %d route(s) now reject mail.\n", o.UUID, o.Path, n)
	})
}
