// Package trackdomain is `postalctl track-domain`: add, list and remove
// the host names (like click.example.com) that serve a server's open and
// click tracking. Each must be a CNAME to dns.track_domain.
package trackdomain

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// NewCmd returns the track-domain command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "track-domain", Short: "Manage a server's open and click tracking domains"}
	cmd.AddCommand(newAddCmd(f, nil), newListCmd(f, nil), newRemoveCmd(f, nil), newSetCmd(f, nil), newCheckCmd(f, nil))
	return cmd
}

// split turns NAME.DOMAIN into its first label and the rest.
func split(full string) (label, domain string, err error) {
	full = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(full), "."))
	label, domain, ok := strings.Cut(full, ".")
	if !ok || validator.New().Var(full, "fqdn") != nil || validator.New().Var(domain, "fqdn") != nil {
		return "", "", cli.Usagef("%q is not NAME.DOMAIN (like click.example.com)", full)
	}
	return label, domain, nil
}

// find returns the track domain called full on serverID.
func find(ctx context.Context, st *store.Store, serverID int64, full string) (*store.TrackDomain, error) {
	list, err := st.TrackDomains(ctx, serverID)
	if err != nil {
		return nil, err
	}
	full = strings.ToLower(strings.TrimSuffix(full, "."))
	for _, t := range list {
		if t.FullName() == full || t.UUID == full {
			return t, nil
		}
	}
	return nil, fmt.Errorf("track domain %s: %w", full, store.ErrNotFound)
}

func notFound(path, full string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("track domain %s not found on %s; list them with `postalctl track-domain ls %s`", full, path, path)
	}
	return err
}
