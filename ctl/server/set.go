package server

import (
	"context"
	"io"
	"math"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// SetOptions are the parsed arguments of `server set`: only the flags
// given are changed (nil fields are left alone).
type SetOptions struct {
	Factory  *cli.Factory
	Path     string
	Mode     *string
	Settings store.ServerSettings
}

func newSetCmd(f *cli.Factory, runF func(context.Context, *SetOptions) error) *cobra.Command {
	o := &SetOptions{Factory: f}
	var (
		name, mode                    string
		sendLimit                     int64
		retention, rawDays, rawSize   int
		spam, spamFail                float64
		outboundSpam                  string
		privacy, allow, logData, tlsR bool
	)
	cmd := &cobra.Command{
		Use:   "set ORG/SERVER --FLAG VALUE...",
		Short: "Change a mail server's settings",
		Example: "  postalctl server set acme/mail --mode development --send-limit 1000\n" +
			"  postalctl server set acme/mail --privacy-mode=false",
		Args:              cli.ExactArgs(1, "ORG/SERVER"),
		ValidArgsFunction: Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			fl := cmd.Flags()
			s := &o.Settings
			if fl.Changed("name") {
				s.Name = &name
			}
			if fl.Changed("mode") {
				o.Mode = &mode
			}
			if fl.Changed("send-limit") {
				if sendLimit < 0 {
					return cli.Usagef("--send-limit %d: want 0 (no limit) or more", sendLimit)
				}
				s.SendLimit = &sendLimit
			}
			for _, c := range []struct {
				flag string
				v    *int
				dst  **int
			}{{"message-retention-days", &retention, &s.MessageRetentionDays}, {"raw-message-retention-days", &rawDays, &s.RawMessageRetentionDays},
				{"raw-message-retention-size", &rawSize, &s.RawMessageRetentionSize}} {
				if fl.Changed(c.flag) {
					if *c.v < 0 {
						return cli.Usagef("--%s %d: want 0 or more", c.flag, *c.v)
					}
					*c.dst = c.v
				}
			}
			if fl.Changed("spam-threshold") {
				s.SpamThreshold = &spam
			}
			if fl.Changed("spam-failure-threshold") {
				s.SpamFailureThreshold = &spamFail
			}
			if fl.Changed("outbound-spam-threshold") {
				if outboundSpam == "off" {
					s.NoOutboundSpamThreshold = true
				} else {
					v, err := strconv.ParseFloat(outboundSpam, 64)
					if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
						return cli.Usagef("--outbound-spam-threshold %q: want a number or off", outboundSpam)
					}
					s.OutboundSpamThreshold = &v
				}
			}
			for _, c := range []struct {
				flag string
				v    *bool
				dst  **bool
			}{{"privacy-mode", &privacy, &s.PrivacyMode}, {"allow-sender", &allow, &s.AllowSender},
				{"log-smtp-data", &logData, &s.LogSMTPData}, {"require-tls", &tlsR, &s.RequireTLS}} {
				if fl.Changed(c.flag) {
					*c.dst = c.v
				}
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runSet(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "display name")
	fl.StringVar(&mode, "mode", "", "live or development")
	fl.Int64Var(&sendLimit, "send-limit", 0, "messages per hour (0: no limit)")
	fl.IntVar(&retention, "message-retention-days", 0, "days messages are kept")
	fl.IntVar(&rawDays, "raw-message-retention-days", 0, "days raw message bodies are kept")
	fl.IntVar(&rawSize, "raw-message-retention-size", 0, "MB of raw message bodies kept")
	fl.Float64Var(&spam, "spam-threshold", 0, "spam score at which a message is spam")
	fl.Float64Var(&spamFail, "spam-failure-threshold", 0, "spam score at which a message fails")
	fl.StringVar(&outboundSpam, "outbound-spam-threshold", "", "inspect outgoing mail and hold what scores this much (off: do not inspect)")
	fl.BoolVar(&privacy, "privacy-mode", false, "hide sender details in Received headers")
	fl.BoolVar(&allow, "allow-sender", false, "allow the Sender header to be used for authentication")
	fl.BoolVar(&logData, "log-smtp-data", false, "log SMTP conversations")
	fl.BoolVar(&tlsR, "require-tls", false, "refuse to deliver without TLS")
	return cmd
}

func runSet(ctx context.Context, o *SetOptions) error {
	if o.Mode != nil {
		m, err := ParseMode(*o.Mode)
		if err != nil {
			return err
		}
		o.Settings.Mode = &m
	}
	if o.Settings == (store.ServerSettings{}) {
		return cli.Usagef("server set: nothing to change; give at least one setting flag (see --help)")
	}
	st, srv, err := Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	srv, err = st.UpdateServer(ctx, srv.ID, o.Settings)
	if err != nil {
		return err
	}
	return o.Factory.Render(srv, func(w io.Writer) { printServer(w, srv) })
}
