package trackdomain

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
)

// SetOptions are the parsed arguments of `track-domain set`.
type SetOptions struct {
	Factory  *cli.Factory
	Path     string
	Name     string
	Verified *bool
}

func newSetCmd(f *cli.Factory, runF func(context.Context, *SetOptions) error) *cobra.Command {
	o := &SetOptions{Factory: f}
	var verified bool
	cmd := &cobra.Command{
		Use:               "set ORG/SERVER NAME.DOMAIN --verified[=false]",
		Short:             "Change a tracking domain's settings",
		Long:              "--verified turns tracking on whatever the CNAME check says (for DNS managed elsewhere);\n--verified=false makes tracking depend on the check again.",
		Args:              cli.ExactArgs(2, "ORG/SERVER NAME.DOMAIN"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Name = args[0], args[1]
			if cmd.Flags().Changed("verified") {
				o.Verified = &verified
			}
			if o.Verified == nil {
				return cli.Usagef("nothing to set; give --verified or --verified=false")
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runSet(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&verified, "verified", false, "track whatever the CNAME check says")
	return cmd
}

func runSet(ctx context.Context, o *SetOptions) error {
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	t, err := find(ctx, st, srv.ID, o.Name)
	if err == nil {
		err = st.SetTrackDomainVerified(ctx, srv.ID, t.UUID, *o.Verified)
	}
	if err != nil {
		return notFound(o.Path, o.Name, err)
	}
	t.Verified = *o.Verified
	return o.Factory.Render(t, func(w io.Writer) {
		fmt.Fprintf(w, "Track domain %s: verified %v.\n", t.FullName(), t.Verified)
	})
}
