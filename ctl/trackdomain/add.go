package trackdomain

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

// AddOptions are the parsed arguments of `track-domain add`.
type AddOptions struct {
	Factory       *cli.Factory
	Path          string
	Name          string
	NoSSL         bool
	NoTrackClicks bool
	NoTrackLoads  bool
	Excluded      []string
	// Verified turns tracking on without waiting for the CNAME check
	// (DNS managed elsewhere).
	Verified bool
}

// Added is the --json output of `track-domain add`: the track domain and
// the CNAME record to publish.
type Added struct {
	TrackDomain *store.TrackDomain `json:"track_domain"`
	Record      struct {
		Type  string `json:"type"`
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"record"`
}

func newAddCmd(f *cli.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	o := &AddOptions{Factory: f}
	cmd := &cobra.Command{
		Use:               "add ORG/SERVER NAME.DOMAIN",
		Short:             "Add a tracking domain under one of the server's domains",
		Example:           "  postalctl track-domain add acme/mail click.example.com",
		Args:              cli.ExactArgs(2, "ORG/SERVER NAME.DOMAIN"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Name = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runAdd(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.NoSSL, "no-ssl", false, "serve tracking over plain HTTP")
	cmd.Flags().BoolVar(&o.NoTrackClicks, "no-track-clicks", false, "do not rewrite links")
	cmd.Flags().BoolVar(&o.NoTrackLoads, "no-track-loads", false, "do not add an open-tracking image")
	cmd.Flags().BoolVar(&o.Verified, "verified", false, "track now, whatever the CNAME check says (DNS managed elsewhere)")
	cmd.Flags().StringSliceVar(&o.Excluded, "exclude-click-domains", nil, "domains whose links are never rewritten")
	return cmd
}

func runAdd(ctx context.Context, o *AddOptions) error {
	label, domain, err := split(o.Name)
	if err != nil {
		return err
	}
	cfg, err := o.Factory.Config()
	if err != nil {
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
	t, err := st.CreateTrackDomain(ctx, srv.ID, store.NewTrackDomain{DomainID: d.ID, Name: label, SSLEnabled: !o.NoSSL,
		TrackClicks: !o.NoTrackClicks, TrackLoads: !o.NoTrackLoads, ExcludedClickDomains: o.Excluded})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("track domain %s.%s already exists on %s", label, domain, o.Path)
	}
	if err != nil {
		return err
	}
	if o.Verified {
		if err := st.SetTrackDomainVerified(ctx, srv.ID, t.UUID, true); err != nil {
			return err
		}
		t.Verified = true
	}
	var out Added
	out.TrackDomain = t
	out.Record.Type, out.Record.Name, out.Record.Value = "CNAME", t.FullName(), cfg.DNS.TrackDomain
	return o.Factory.Render(out, func(w io.Writer) {
		fmt.Fprintf(w, "Added track domain %s on %s.\nPublish: %s CNAME %s\n", t.FullName(), o.Path, t.FullName(), cfg.DNS.TrackDomain)
	})
}
