package webhook

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// AddOptions are the parsed arguments of `webhook add`.
type AddOptions struct {
	Factory   *cli.Factory
	Path      string
	URL       string
	Name      string
	Events    []string
	AllEvents bool
	Disabled  bool
	NoSign    bool
}

func newAddCmd(f *cli.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	o := &AddOptions{Factory: f}
	cmd := &cobra.Command{
		Use:               "add ORG/SERVER URL (--events EVENT,... | --all-events)",
		Short:             "Add a webhook",
		Example:           "  postalctl webhook add acme/mail https://app.example.com/hooks --events MessageSent,MessageBounced",
		Args:              cli.ExactArgs(2, "ORG/SERVER URL"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.URL = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runAdd(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Name, "name", "", "display name (default: the URL's host)")
	cmd.Flags().StringSliceVar(&o.Events, "events", nil, "events to send: "+strings.Join(Events(), ", "))
	cmd.Flags().BoolVar(&o.AllEvents, "all-events", false, "send every event, including ones added later")
	cmd.Flags().BoolVar(&o.Disabled, "disabled", false, "create the webhook disabled")
	cmd.Flags().BoolVar(&o.NoSign, "no-sign", false, "do not sign requests with the signing key")
	return cmd
}

func runAdd(ctx context.Context, o *AddOptions) error {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || validator.New().Var(o.URL, "url") != nil {
		return cli.Usagef("%q is not an http(s) URL", o.URL)
	}
	switch {
	case o.AllEvents && len(o.Events) > 0:
		return cli.Usagef("give --events or --all-events, not both")
	case !o.AllEvents && len(o.Events) == 0:
		return cli.Usagef("give --events EVENT,... or --all-events")
	}
	events, err := parseEvents(o.Events)
	if err != nil {
		return err
	}
	name := o.Name
	if name == "" {
		name = u.Host
	}
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	w, err := st.CreateWebhook(ctx, srv.ID, store.NewWebhook{Name: name, URL: o.URL, AllEvents: o.AllEvents, Events: events,
		Enabled: !o.Disabled, Sign: !o.NoSign})
	if err != nil {
		return err
	}
	return o.Factory.Render(w, func(out io.Writer) {
		fmt.Fprintf(out, "Added webhook %s (%s) on %s for %s.\n", w.URL, w.UUID, o.Path, describeEvents(w))
	})
}

func describeEvents(w *store.Webhook) string {
	if w.AllEvents {
		return "all events"
	}
	return strings.Join(w.Events, ", ")
}
