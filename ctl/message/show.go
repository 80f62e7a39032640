package message

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// ShowOptions are the parsed arguments of `message show`.
type ShowOptions struct {
	Factory *cli.Factory
	Ref     string
	// Raw prints the stored body: alone, byte for byte, in the table form;
	// as the "raw" field with --json.
	Raw bool
}

// Details is the --json output of `message show`.
type Details struct {
	Message    *store.Message    `json:"message"`
	Deliveries []*store.Delivery `json:"deliveries"`
	// Queued is the message's queued row; null when it is not queued.
	Queued *store.QueuedMessage `json:"queued"`
	// Tracking is what open and click tracking recorded: whether the
	// message was rewritten, first load, last click, loads and clicks
	// (newest first, at most 1000 of each).
	Tracking *store.MessageTracking `json:"tracking"`
	// WebhookAttempts are the logged attempts of the webhook requests about
	// the message, newest first (at most 50); PendingWebhooks are those
	// not delivered yet.
	WebhookAttempts []*store.WebhookAttempt `json:"webhook_attempts"`
	PendingWebhooks []*store.WebhookRequest `json:"pending_webhooks"`
	// Inspection is the message's spam and virus inspection; absent when it
	// was not inspected.
	Inspection *store.Inspection `json:"inspection,omitempty"`
	// SpamChecks are the rules the spam scanner matched.
	SpamChecks []store.SpamCheck `json:"spam_checks,omitempty"`
	// Raw is the stored body, only with --raw.
	Raw *string `json:"raw,omitempty"`
}

func newShowCmd(f *cli.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	o := &ShowOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "show ID|TOKEN",
		Short: "Show a message, its queue state, deliveries, webhook requests, loads and clicks",
		Long: "Show a message (one recipient's copy), whether it is queued, every delivery attempt, the webhook\n" +
			"requests about it (attempts logged and requests pending) and the loads and clicks tracking recorded.\n" +
			"The body is never printed unless --raw is given; then it alone is written, byte for byte,\n" +
			"so `postalctl message show 42 --raw > 42.eml` saves it.",
		Args: cli.ExactArgs(1, "a message ID or TOKEN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runShow(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Raw, "raw", false, "print the stored message body (RFC 5322) instead of the details")
	return cmd
}

func runShow(ctx context.Context, o *ShowOptions) error {
	f := o.Factory
	st, m, err := find(ctx, f, o.Ref)
	if err != nil {
		return err
	}
	out := Details{Message: m, Deliveries: []*store.Delivery{}}
	if ds, err := st.Deliveries(ctx, m.ID); err != nil {
		return err
	} else if ds != nil {
		out.Deliveries = ds
	}
	if out.Tracking, err = st.TrackingOf(ctx, m.ID); err != nil {
		return err
	}
	if out.WebhookAttempts, err = st.WebhookAttempts(ctx, store.WebhookAttemptFilter{MessageID: m.ID, Limit: 50}); err != nil {
		return err
	}
	if out.PendingWebhooks, err = st.WebhookRequestsOfMessage(ctx, m.ID); err != nil {
		return err
	}
	ins, err := st.Inspections(ctx, []int64{m.ID})
	if err != nil {
		return err
	}
	if in := ins[m.ID]; in != nil && in.Inspected {
		out.Inspection = in
		if out.SpamChecks, err = st.SpamChecks(ctx, m.ID); err != nil {
			return err
		}
	}
	q, err := st.QueuedForMessage(ctx, m.ID)
	switch {
	case err == nil:
		out.Queued = q
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if o.Raw {
		if m.RawMessageID == 0 {
			return fmt.Errorf("message %d has no stored body (removed by retention)", m.ID)
		}
		raw, err := st.RawMessage(ctx, m.RawMessageID)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("message %d has no stored body (removed by retention)", m.ID)
		}
		if err != nil {
			return err
		}
		if !f.JSON {
			_, err := f.IO.Out.Write(raw)
			return err
		}
		s := string(raw)
		out.Raw = &s
	}
	return f.Render(out, func(w io.Writer) { printDetails(w, out) })
}

func printDetails(w io.Writer, d Details) {
	m := d.Message
	fmt.Fprintf(w, "Message:\t%d (token %s)\n", m.ID, m.Token)
	fmt.Fprintf(w, "Scope:\t%s\n", m.Scope)
	status := m.Status
	if m.Held {
		status += ", held"
		if !m.HoldExpiry.IsZero() {
			status += " until " + cli.FormatTime(m.HoldExpiry)
		}
	}
	fmt.Fprintf(w, "Status:\t%s\n", status)
	if m.Details != "" {
		fmt.Fprintf(w, "Details:\t%s\n", m.Details)
	}
	fmt.Fprintf(w, "From:\t%s\nTo:\t%s\nSubject:\t%s\n", m.MailFrom, m.RcptTo, m.Subject)
	if m.MessageID != "" {
		fmt.Fprintf(w, "Message-ID:\t%s\n", m.MessageID)
	}
	if m.Tag != "" {
		fmt.Fprintf(w, "Tag:\t%s\n", m.Tag)
	}
	fmt.Fprintf(w, "Size:\t%d bytes\nReceived:\t%s\n", m.Size, cli.FormatTime(m.Timestamp))
	if m.Bounce {
		fmt.Fprintf(w, "Bounce of:\t%d\n", m.BounceForID)
	}
	if q := d.Queued; q != nil {
		lock := ""
		if q.LockedBy != "" {
			lock = ", locked by " + q.LockedBy + " until " + cli.FormatTime(q.LockedUntil)
		}
		fmt.Fprintf(w, "Queued:\tyes (row %d, %s, attempts %d, next attempt %s%s)\n", q.ID, q.Domain, q.Attempts, cli.FormatTime(q.RetryAfter), lock)
	} else {
		fmt.Fprintln(w, "Queued:\tno")
	}
	if in := d.Inspection; in != nil {
		threat := "no threat"
		if in.Threat {
			threat = "threat " + in.ThreatDetails
		}
		spam := "not spam"
		if in.Spam {
			spam = "spam"
		}
		fmt.Fprintf(w, "Inspection:\t%s (score %g, %d checks), %s\n", spam, in.SpamScore, len(d.SpamChecks), threat)
		if in.Skipped != "" {
			fmt.Fprintf(w, "Unscanned:\t%s\n", in.Skipped)
		}
	}
	if tr := d.Tracking; tr != nil && (tr.Parsed || len(tr.Loads) > 0 || len(tr.Clicks) > 0) {
		fmt.Fprintf(w, "Tracking:\t%d links, %d pixels, %d loads, %d clicks\n", tr.TrackedLinks, tr.TrackedImages, len(tr.Loads), len(tr.Clicks))
	}
	fmt.Fprintln(w)
	if d.Tracking != nil && (len(d.Tracking.Loads) > 0 || len(d.Tracking.Clicks) > 0) {
		fmt.Fprintln(w, "TIME\tACTIVITY\tIP\tUSER AGENT")
		for _, l := range d.Tracking.Loads {
			fmt.Fprintf(w, "%s\tload\t%s\t%s\n", cli.FormatTime(l.Timestamp), dashIfEmpty(l.IP), dashIfEmpty(l.UserAgent))
		}
		for _, c := range d.Tracking.Clicks {
			fmt.Fprintf(w, "%s\tclick %s\t%s\t%s\n", cli.FormatTime(c.Timestamp), c.URL, dashIfEmpty(c.IP), dashIfEmpty(c.UserAgent))
		}
		fmt.Fprintln(w)
	}
	printWebhooks(w, d)
	if len(d.Deliveries) == 0 {
		fmt.Fprintln(w, "No deliveries yet.")
		return
	}
	fmt.Fprintln(w, "TIME\tSTATUS\tDETAILS\tOUTPUT\tTLS\tTOOK")
	for _, dl := range d.Deliveries {
		tls := "no"
		if dl.SentWithSSL {
			tls = "yes"
		}
		took := "-"
		if dl.Time > 0 {
			took = fmt.Sprintf("%.2fs", dl.Time)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", cli.FormatTime(dl.Timestamp), dl.Status, dashIfEmpty(dl.Details), dashIfEmpty(dl.Output), tls, took)
	}
}

// printWebhooks prints the webhook requests about the message, pending
// first, then the attempt log; nothing when there are none.
func printWebhooks(w io.Writer, d Details) {
	if len(d.PendingWebhooks) == 0 && len(d.WebhookAttempts) == 0 {
		return
	}
	fmt.Fprintln(w, "WEBHOOK TIME\tEVENT\tATTEMPT\tRESULT\tURL")
	for _, r := range d.PendingWebhooks {
		fmt.Fprintf(w, "%s\t%s\t%d\tpending, due %s\t%s\n", cli.FormatTime(r.CreatedAt), r.Event, r.Attempts+1,
			cli.FormatTime(r.RetryAfter), r.URL)
	}
	for _, a := range d.WebhookAttempts {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s %d\t%s\n", cli.FormatTime(a.CreatedAt), a.Event, a.Attempt, a.Result, a.StatusCode, a.URL)
	}
	fmt.Fprintln(w)
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
