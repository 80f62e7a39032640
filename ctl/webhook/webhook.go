// Package webhook is `postalctl webhook`: add, list and remove the HTTP
// callbacks a server makes for message and domain events, show the log of
// their attempts (requests) and send a signed test event (test).
package webhook

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// NewCmd returns the webhook command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "webhook", Short: "Manage a server's webhooks"}
	cmd.AddCommand(newAddCmd(f, nil), newListCmd(f, nil), newRemoveCmd(f, nil), newRequestsCmd(f, nil), newTestCmd(f, nil))
	return cmd
}

// Events returns the event names a webhook may subscribe to, as Postal
// names them.
func Events() []string {
	return []string{"MessageSent", "MessageDelayed", "MessageDeliveryFailed", "MessageHeld", "MessageBounced",
		"MessageLinkClicked", "MessageLoaded", "DomainDNSError", "SendLimitApproaching", "SendLimitExceeded"}
}

// parseEvents maps a list of event names (any case) to Postal's names.
func parseEvents(list []string) ([]string, error) {
	var out []string
	for _, e := range list {
		e = strings.TrimSpace(e)
		found := ""
		for _, known := range Events() {
			if strings.EqualFold(e, known) {
				found = known
			}
		}
		if found == "" {
			return nil, cli.Usagef("--events: unknown event %q (known: %s)", e, strings.Join(Events(), ", "))
		}
		out = append(out, found)
	}
	return out, nil
}
