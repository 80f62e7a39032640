package webhook

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// RequestsOptions are the parsed arguments of `webhook requests`.
type RequestsOptions struct {
	Factory *cli.Factory
	Path    string
	// Webhook is a webhook's uuid or name; "" lists every webhook's.
	Webhook string
	Failed  bool
	// UUID, when set, shows one request's attempts.
	UUID  string
	Limit int
}

func newRequestsCmd(f *cli.Factory, runF func(context.Context, *RequestsOptions) error) *cobra.Command {
	o := &RequestsOptions{Factory: f}
	cmd := &cobra.Command{
		Use:               "requests ORG/SERVER [--webhook UUID|NAME] [--failed] [--uuid REQUEST]",
		Short:             "Show the log of webhook attempts, newest first",
		Example:           "  postalctl webhook requests acme/mail --failed",
		Args:              cli.ExactArgs(1, "ORG/SERVER"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			if o.Limit < 1 || o.Limit > 1000 {
				return cli.Usagef("--limit must be between 1 and 1000")
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRequests(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Webhook, "webhook", "", "only this webhook's attempts (uuid or name)")
	cmd.Flags().BoolVar(&o.Failed, "failed", false, "only attempts that failed")
	cmd.Flags().StringVar(&o.UUID, "uuid", "", "only the attempts of this request (its uuid, as receivers see it)")
	cmd.Flags().IntVar(&o.Limit, "limit", 50, "most attempts shown (1-1000)")
	return cmd
}

func runRequests(ctx context.Context, o *RequestsOptions) error {
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	f := store.WebhookAttemptFilter{ServerID: srv.ID, Failed: o.Failed, Limit: o.Limit, RequestUUID: o.UUID}
	if o.Webhook != "" {
		h, err := findWebhook(ctx, st, srv.ID, o.Path, o.Webhook)
		if err != nil {
			return err
		}
		f.WebhookID = h.ID
	}
	list, err := st.WebhookAttempts(ctx, f)
	if err != nil {
		return err
	}
	return o.Factory.Render(list, func(w io.Writer) {
		fmt.Fprintln(w, "TIME\tEVENT\tURL\tATTEMPT\tSTATUS\tRESULT\tMS\tRETRY\tUUID\tRESPONSE")
		for _, a := range list {
			retry := "-"
			if a.WillRetry {
				retry = "yes"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", cli.FormatTime(a.CreatedAt), a.Event, a.URL, a.Attempt,
				a.StatusCode, a.Result, a.Duration.Milliseconds(), retry, a.RequestUUID, oneLine(a.Response, 40))
		}
	})
}

// findWebhook resolves a webhook of server serverID by uuid or name.
func findWebhook(ctx context.Context, st *store.Store, serverID int64, path, ref string) (*store.Webhook, error) {
	hooks, err := st.Webhooks(ctx, serverID)
	if err != nil {
		return nil, err
	}
	for _, h := range hooks {
		if h.UUID == ref {
			return h, nil
		}
	}
	var found *store.Webhook
	for _, h := range hooks {
		if h.Name == ref {
			if found != nil {
				return nil, fmt.Errorf("several webhooks of %s are named %q; give the uuid (postalctl webhook ls %s)", path, ref, path)
			}
			found = h
		}
	}
	if found == nil {
		return nil, fmt.Errorf("webhook %s not found on %s; list webhooks with `postalctl webhook ls %s`", ref, path, path)
	}
	return found, nil
}

// oneLine shortens s to n characters on one line, for tables.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}
