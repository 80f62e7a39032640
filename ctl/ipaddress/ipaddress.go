// Package ipaddress is `postalctl ip-address`: add, list and remove the
// sending addresses of IP pools.
package ipaddress

import (
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// NewCmd returns the ip-address command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "ip-address", Short: "Manage the sending addresses of IP pools"}
	cmd.AddCommand(newAddCmd(f, nil), newListCmd(f, nil), newRemoveCmd(f, nil))
	return cmd
}
