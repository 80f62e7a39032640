// Package stats is `postalctl stats`: message throughput per hour (the last
// --hours, default 24) or per day (--days) for one server or all of them,
// computed from SQL (messages by their timestamp, delivery rows by theirs),
// as the console's per-minute sparklines are. Exit codes: 0 printed, 1 a
// store failure or unknown server, 2 usage.
package stats

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// Options are the parsed arguments of `stats`.
type Options struct {
	Factory *cli.Factory
	// Path is ORG/SERVER, "" for every server.
	Path  string
	Hours int
	Days  int
}

// Bounds of --hours and --days.
const (
	MaxHours = 24 * 31
	MaxDays  = 3660
)

// Row is one bucket of the --json output.
type Row struct {
	Start    time.Time `json:"start"`
	Accepted int64     `json:"accepted"`
	Sent     int64     `json:"sent"`
	SoftFail int64     `json:"soft_fail"`
	HardFail int64     `json:"hard_fail"`
	Held     int64     `json:"held"`
	Bounced  int64     `json:"bounced"`
}

// Output is the --json output.
type Output struct {
	Server string `json:"server,omitempty"`
	// Step is "hour" or "day".
	Step string `json:"step"`
	Rows []Row  `json:"rows"`
	// Total sums the rows (its Start is the first row's).
	Total Row `json:"total"`
}

// NewCmd returns the stats command; runF replaces the action in tests.
func NewCmd(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "stats [ORG/SERVER]",
		Short: "Print messages accepted and delivery outcomes per hour or per day",
		Long: "Print, per hour (the last --hours, default 24) or per day (--days), the messages accepted and the\n" +
			"delivery outcomes recorded (sent, soft-failed, hard-failed, held, bounced), for one server or all.\n" +
			"Buckets are aligned to the hour or the UTC day; the last one is the current, partial one.",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Path = args[0]
			}
			switch {
			case o.Hours != 0 && o.Days != 0:
				return cli.Usagef("--hours and --days cannot be used together")
			case o.Hours < 0 || o.Hours > MaxHours:
				return cli.Usagef("--hours must be between 1 and %d (got %d)", MaxHours, o.Hours)
			case o.Days < 0 || o.Days > MaxDays:
				return cli.Usagef("--days must be between 1 and %d (got %d)", MaxDays, o.Days)
			case o.Hours == 0 && o.Days == 0:
				o.Hours = 24
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return run(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.Hours, "hours", 0, "hourly figures for the last N hours (default 24)")
	cmd.Flags().IntVar(&o.Days, "days", 0, "daily figures for the last N days")
	return cmd
}

func run(ctx context.Context, o *Options) error {
	f := o.Factory
	var (
		st       *store.Store
		serverID int64
		err      error
	)
	if o.Path != "" {
		var srv *store.Server
		if st, srv, err = server.Find(ctx, f, o.Path); err != nil {
			return err
		}
		serverID = srv.ID
	} else if st, err = f.Store(ctx); err != nil {
		return err
	}
	now := f.Now().UTC()
	step, n, name, layout := time.Hour, o.Hours, "hour", "2006-01-02 15:00"
	if o.Days > 0 {
		step, n, name, layout = 24*time.Hour, o.Days, "day", "2006-01-02"
	}
	start := now.Truncate(step).Add(-time.Duration(n-1) * step)
	sr, err := st.Throughput(ctx, serverID, start, step, n)
	if err != nil {
		return err
	}
	out := Output{Server: o.Path, Step: name, Rows: make([]Row, n), Total: Row{Start: start}}
	for i := range n {
		r := Row{Start: start.Add(time.Duration(i) * step), Accepted: sr.Accepted[i], Sent: sr.Sent[i], SoftFail: sr.SoftFail[i],
			HardFail: sr.HardFail[i], Held: sr.Held[i], Bounced: sr.Bounced[i]}
		out.Rows[i] = r
		out.Total.Accepted += r.Accepted
		out.Total.Sent += r.Sent
		out.Total.SoftFail += r.SoftFail
		out.Total.HardFail += r.HardFail
		out.Total.Held += r.Held
		out.Total.Bounced += r.Bounced
	}
	return f.Render(out, func(w io.Writer) {
		fmt.Fprintf(w, "%s (UTC)\tACCEPTED\tSENT\tSOFT-FAILED\tHARD-FAILED\tHELD\tBOUNCED\n", map[string]string{"hour": "HOUR", "day": "DAY"}[name])
		for _, r := range out.Rows {
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", r.Start.Format(layout), r.Accepted, r.Sent, r.SoftFail, r.HardFail, r.Held, r.Bounced)
		}
		t := out.Total
		fmt.Fprintf(w, "TOTAL\t%d\t%d\t%d\t%d\t%d\t%d\n", t.Accepted, t.Sent, t.SoftFail, t.HardFail, t.Held, t.Bounced)
	})
}
