package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/signing"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/webhook"
)

// TestOptions are the parsed arguments of `webhook test`.
type TestOptions struct {
	Factory *cli.Factory
	Path    string
	// Webhook is the webhook's uuid or name.
	Webhook string
	Event   string
	// UserAgent is sent as User-Agent.
	UserAgent string
}

// TestResult is what `webhook test --json` prints.
type TestResult struct {
	URL        string  `json:"url"`
	Event      string  `json:"event"`
	UUID       string  `json:"uuid"`
	Result     string  `json:"result"`
	StatusCode int     `json:"status_code"`
	Seconds    float64 `json:"seconds"`
	Response   string  `json:"response"`
}

func newTestCmd(f *cli.Factory, runF func(context.Context, *TestOptions) error) *cobra.Command {
	o := &TestOptions{Factory: f, UserAgent: "Postal/postalctl"}
	cmd := &cobra.Command{
		Use:   "test ORG/SERVER WEBHOOK [--event EVENT]",
		Short: "Send a signed test event to a webhook now and show the answer",
		Long: "Sends one example event, signed as every webhook request is, to the webhook (uuid or name) and\n" +
			"prints the receiver's answer. Nothing is queued, retried or logged.",
		Example:           "  postalctl webhook test acme/mail app.example.com --event MessageBounced",
		Args:              cli.ExactArgs(2, "ORG/SERVER WEBHOOK"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Webhook = args[0], args[1]
			ev, err := parseEvents([]string{o.Event})
			if err != nil {
				return cli.Usagef("--event: unknown event %q (known: %s)", o.Event, joinEvents())
			}
			o.Event = ev[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runTest(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Event, "event", webhook.EventMessageSent, "event to send: "+joinEvents())
	return cmd
}

// ErrTestFailed is returned (wrapped) when the receiver did not accept the
// test event.
var ErrTestFailed = errors.New("the receiver did not accept the test event")

func runTest(ctx context.Context, o *TestOptions) error {
	cfg, err := o.Factory.Config()
	if err != nil {
		return err
	}
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	h, err := findWebhook(ctx, st, srv.ID, o.Path, o.Webhook)
	if err != nil {
		return err
	}
	key, err := signing.Load(cfg.Postal.SigningKeyPath)
	if err != nil {
		return &cli.ConfigError{Err: err}
	}
	now := time.Now()
	if o.Factory.Now != nil {
		now = o.Factory.Now()
	}
	payload, _ := webhook.Example(o.Event, webhook.Server{UUID: srv.UUID, Name: srv.Name, Permalink: srv.Permalink,
		Organization: srv.OrganizationPermalink}, now)
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	client, err := webhook.NewClient(webhook.ClientOptions{Signer: key, UserAgent: o.UserAgent})
	if err != nil {
		return err
	}
	defer client.Close()
	uuid := testUUID()
	res := client.Send(ctx, webhook.Request{URL: h.URL, Event: o.Event, UUID: uuid, CreatedAt: now, Payload: body})
	out := TestResult{URL: h.URL, Event: o.Event, UUID: uuid, Result: string(res.Outcome), StatusCode: res.Code(),
		Seconds: res.Duration.Seconds(), Response: res.Excerpt}
	if err := o.Factory.Render(out, func(w io.Writer) {
		fmt.Fprintf(w, "URL:\t%s\nEvent:\t%s\nUUID:\t%s\nResult:\t%s\nStatus:\t%d\nTime:\t%.3fs\nResponse:\t%s\n",
			out.URL, out.Event, out.UUID, out.Result, out.StatusCode, out.Seconds, oneLine(out.Response, 200))
	}); err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("%w (%s, status %d); see the response above", ErrTestFailed, res.Outcome, res.Code())
	}
	return nil
}

// testUUID is a random version-4 UUID for the test request.
func testUUID() string {
	b := store.RandomToken(16)
	return b[0:8] + "-" + b[8:12] + "-4" + b[13:16] + "-a" + b[17:20] + "-" + b[20:32]
}

func joinEvents() string {
	s := ""
	for i, e := range Events() {
		if i > 0 {
			s += ", "
		}
		s += e
	}
	return s
}
