// Package suppression is `postalctl suppression`: list, add and remove the
// addresses a server will not send to (until each entry's keep-until time).
package suppression

import (
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// NewCmd returns the suppression command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "suppression", Short: "Manage a server's suppression list"}
	cmd.AddCommand(newListCmd(f, nil), newAddCmd(f, nil), newRemoveCmd(f, nil))
	return cmd
}

// address checks and lower-cases an e-mail address.
func address(a string) (string, error) {
	a = strings.ToLower(strings.TrimSpace(a))
	if validator.New().Var(a, "required,email") != nil {
		return "", cli.Usagef("%q is not an e-mail address", a)
	}
	return a, nil
}
