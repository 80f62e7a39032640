// Package stats is `postalctl stats`: the per-server statistics postald
// keeps in SQL (Postal's hourly/daily/monthly figures), per hour (the last
// --hours, default 24), per day (--days) or per month (--months), for one
// server or the sum of all of them. The figures are written by intake's
// commit and the worker's outcome commit, so reading them costs one indexed
// query whatever the traffic. Exit codes: 0 printed, 1 a store failure or
// unknown server, 2 usage.
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
	Path   string
	Hours  int
	Days   int
	Months int
}

// Bounds of --hours, --days and --months.
const (
	MaxHours  = 24 * 31
	MaxDays   = 3660
	MaxMonths = 120
)

// Row is one period of the --json output.
type Row struct {
	Start time.Time `json:"start"`
	store.StatCounts
}

// Output is the --json output.
type Output struct {
	Server string `json:"server,omitempty"`
	// Period is "hour", "day" or "month" (UTC).
	Period string `json:"period"`
	Rows   []Row  `json:"rows"`
	// Total sums the rows (its Start is the first row's).
	Total Row `json:"total"`
}

// NewCmd returns the stats command; runF replaces the action in tests.
func NewCmd(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "stats [ORG/SERVER]",
		Short: "Print per-server statistics per hour, day or month",
		Long: "Print, per hour (the last --hours, default 24), per day (--days) or per month (--months), the\n" +
			"messages stored (incoming, outgoing), held and bounced, and the delivery outcomes recorded (sent,\n" +
			"soft-failed, hard-failed), for one server or the sum of all. Periods are UTC; the last one is the\n" +
			"current, partial one. The live per-minute view is `postalctl tui`.",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Path = args[0]
			}
			set := 0
			for _, v := range []int{o.Hours, o.Days, o.Months} {
				if v != 0 {
					set++
				}
			}
			switch {
			case set > 1:
				return cli.Usagef("--hours, --days and --months cannot be used together")
			case o.Hours < 0 || o.Hours > MaxHours:
				return cli.Usagef("--hours must be between 1 and %d (got %d)", MaxHours, o.Hours)
			case o.Days < 0 || o.Days > MaxDays:
				return cli.Usagef("--days must be between 1 and %d (got %d)", MaxDays, o.Days)
			case o.Months < 0 || o.Months > MaxMonths:
				return cli.Usagef("--months must be between 1 and %d (got %d)", MaxMonths, o.Months)
			case set == 0:
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
	cmd.Flags().IntVar(&o.Months, "months", 0, "monthly figures for the last N months")
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
	p, n, head, layout := store.PeriodHour, o.Hours, "HOUR (UTC)", "2006-01-02 15:00"
	start := p.Start(now).Add(-time.Duration(n-1) * time.Hour)
	switch {
	case o.Days > 0:
		p, n, head, layout = store.PeriodDay, o.Days, "DAY (UTC)", "2006-01-02"
		start = p.Start(now).AddDate(0, 0, -(n - 1))
	case o.Months > 0:
		p, n, head, layout = store.PeriodMonth, o.Months, "MONTH (UTC)", "2006-01"
		start = p.Start(now).AddDate(0, -(n - 1), 0)
	}
	rows, err := st.Statistics(ctx, serverID, p, start, n)
	if err != nil {
		return err
	}
	out := Output{Server: o.Path, Period: string(p), Rows: make([]Row, n), Total: Row{Start: rows[0].Start}}
	for i, r := range rows {
		out.Rows[i] = Row{Start: r.Start, StatCounts: r.StatCounts}
		out.Total.StatCounts = out.Total.Add(r.StatCounts)
	}
	line := func(w io.Writer, label string, c store.StatCounts) {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", label, c.Incoming, c.Outgoing, c.Sent, c.SoftFail, c.HardFail, c.Held, c.Bounces)
	}
	return f.Render(out, func(w io.Writer) {
		fmt.Fprintf(w, "%s\tINCOMING\tOUTGOING\tSENT\tSOFT-FAILED\tHARD-FAILED\tHELD\tBOUNCES\n", head)
		for _, r := range out.Rows {
			line(w, r.Start.Format(layout), r.StatCounts)
		}
		line(w, "TOTAL", out.Total.StatCounts)
	})
}
