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
	"github.com/postalgo/postal/daemon/smtpclient"
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
	// HTTP endpoint options (Postal's defaults when empty or false).
	Format, Encoding string
	StripReplies     bool
	NoAttachments    bool
	Timeout          int
	// SSLMode of an SMTP endpoint: none, auto, starttls or tls.
	SSLMode string
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
	cmd.Flags().StringVar(&o.Endpoint, "endpoint", "", "http:URL, smtp:HOST:PORT or address:ADDRESS")
	cmd.Flags().StringVar(&o.Format, "format", "", "HTTP endpoint payload: hash or raw (default hash)")
	cmd.Flags().StringVar(&o.Encoding, "encoding", "", "HTTP endpoint body: json or form (default json)")
	cmd.Flags().BoolVar(&o.StripReplies, "strip-replies", false, "HTTP endpoint: move quoted replies out of plain_body")
	cmd.Flags().BoolVar(&o.NoAttachments, "no-attachments", false, "HTTP endpoint: leave attachments out of the payload")
	cmd.Flags().IntVar(&o.Timeout, "timeout", 0, "HTTP endpoint timeout in seconds, 5 to 60 (default 5)")
	cmd.Flags().StringVar(&o.SSLMode, "ssl-mode", "", "SMTP endpoint TLS: none, auto, starttls (required) or tls (default auto)")
	return cmd
}

// endpointOptions applies the HTTP and SMTP endpoint flags to ep.
func endpointOptions(o *AddOptions, ep *store.NewEndpoint) error {
	httpFlags := o.Format != "" || o.Encoding != "" || o.StripReplies || o.NoAttachments || o.Timeout != 0
	if httpFlags && (ep == nil || ep.Type != store.EndpointHTTP) {
		return cli.Usagef("--format, --encoding, --strip-replies, --no-attachments and --timeout need an http: endpoint")
	}
	if o.SSLMode != "" && (ep == nil || ep.Type != store.EndpointSMTP) {
		return cli.Usagef("--ssl-mode needs an smtp: endpoint")
	}
	if ep == nil {
		return nil
	}
	switch strings.ToLower(o.Format) {
	case "":
	case "hash":
		ep.Format = store.FormatHash
	case "raw", "rawmessage":
		ep.Format = store.FormatRawMessage
	default:
		return cli.Usagef("--format %q: want hash or raw", o.Format)
	}
	switch strings.ToLower(o.Encoding) {
	case "":
	case "json", "bodyasjson":
		ep.Encoding = store.EncodingBodyAsJSON
	case "form", "formdata":
		ep.Encoding = store.EncodingFormData
	default:
		return cli.Usagef("--encoding %q: want json or form", o.Encoding)
	}
	if o.Timeout != 0 && (o.Timeout < 5 || o.Timeout > 60) {
		return cli.Usagef("--timeout %d: want 5 to 60 seconds", o.Timeout)
	}
	ep.StripReplies, ep.ExcludeAttachments, ep.Timeout = o.StripReplies, o.NoAttachments, o.Timeout
	if o.SSLMode != "" {
		m, err := smtpclient.ParseSSLMode(o.SSLMode)
		if err != nil {
			return cli.Usagef("--ssl-mode %q: want none, auto, starttls or tls", o.SSLMode)
		}
		ep.SSLMode = string(m)
	}
	return nil
}

func runAdd(ctx context.Context, o *AddOptions) error {
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
		if ep, err = ParseEndpoint(o.Endpoint); err != nil {
			return err
		}
	}
	if err := endpointOptions(o, ep); err != nil {
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
