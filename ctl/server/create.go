package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// CreateOptions are the parsed arguments of `server create`.
type CreateOptions struct {
	Factory *cli.Factory
	Path    string
	Name    string
	Mode    string
}

func newCreateCmd(f *cli.Factory, runF func(context.Context, *CreateOptions) error) *cobra.Command {
	o := &CreateOptions{Factory: f}
	cmd := &cobra.Command{
		Use:               "create ORG/SERVER",
		Short:             "Create a mail server in an organisation",
		Args:              cli.ExactArgs(1, "ORG/SERVER"),
		ValidArgsFunction: CompleteOrg(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runCreate(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Name, "name", "", "display name (default: the permalink)")
	cmd.Flags().StringVar(&o.Mode, "mode", "live", "live or development")
	return cmd
}

// ParseMode turns live/development (any case) into store.ModeLive or
// store.ModeDevelopment.
func ParseMode(m string) (string, error) {
	switch strings.ToLower(m) {
	case "live":
		return store.ModeLive, nil
	case "development":
		return store.ModeDevelopment, nil
	}
	return "", cli.Usagef("--mode %q: want live or development", m)
}

func runCreate(ctx context.Context, o *CreateOptions) error {
	org, perm, err := SplitPath(o.Path)
	if err != nil {
		return err
	}
	mode, err := ParseMode(o.Mode)
	if err != nil {
		return err
	}
	name := o.Name
	if name == "" {
		name = perm
	}
	cfg, err := o.Factory.Config()
	if err != nil {
		return err
	}
	st, err := o.Factory.Store(ctx)
	if err != nil {
		return err
	}
	spam, spamFail := float64(cfg.Postal.DefaultSpamThreshold), float64(cfg.Postal.DefaultSpamFailureThreshold)
	srv, err := st.CreateServer(ctx, org, store.NewServer{Name: name, Permalink: perm, Mode: mode,
		SpamThreshold: &spam, SpamFailureThreshold: &spamFail})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("organization %s not found; create it with `postalctl org create %s`", org, org)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("server %s already exists; see it with `postalctl server show %s`", o.Path, o.Path)
	case err != nil:
		return err
	}
	return o.Factory.Render(srv, func(w io.Writer) { printServer(w, srv) })
}
