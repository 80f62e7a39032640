// Package status is `postalctl status`: whether the database and Redis
// answer, the schema version against this binary's, the postald processes
// with a live heartbeat, who holds the cron and requeuer leases, and what
// each cron task last did. It reads through tui/source, the same snapshot
// the TUI shows. Whatever one side knows is printed even when the other side
// is down; the command then exits 1 with a one-line error naming what is
// wrong (exit 2 for usage and configuration errors).
package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/tui/source"
)

// Options are the parsed arguments of `status`.
type Options struct {
	Factory *cli.Factory
	// Timeout bounds the reads of each side.
	Timeout time.Duration
}

// Result is the --json output.
type Result struct {
	Database  Database   `json:"database"`
	Redis     Health     `json:"redis"`
	KeyPrefix KeyPrefix  `json:"key_prefix"`
	Processes []Process  `json:"processes"`
	Leases    []Lease    `json:"leases"`
	Cron      []CronTask `json:"cron"`
}

// Health says whether a side answered.
type Health struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// KeyPrefix says which installation owns redis.key_prefix (postald does
// not start on a prefix another installation's database owns).
type KeyPrefix struct {
	Prefix string `json:"prefix"`
	// ThisInstallation is this database's id; OwnedBy the id recorded in
	// Redis, "" while no postald has claimed the prefix.
	ThisInstallation string `json:"this_installation,omitempty"`
	OwnedBy          string `json:"owned_by,omitempty"`
	// Ours: the prefix is this installation's, or nobody's yet. False
	// when it could not be read (Error).
	Ours  bool   `json:"ours"`
	Error string `json:"error,omitempty"`
}

// Database is the database side: reachability and schema version.
type Database struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Driver string `json:"driver"`
	// SchemaCurrent is the applied version, SchemaLatest this binary's.
	SchemaCurrent  int  `json:"schema_current"`
	SchemaLatest   int  `json:"schema_latest"`
	SchemaUpToDate bool `json:"schema_up_to_date"`
}

// Process is a postald process with a live heartbeat.
type Process struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Roles   []string  `json:"roles"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	Seen    time.Time `json:"seen"`
}

// Lease is the holder of one lease; Owner is "" when nobody holds it.
type Lease struct {
	Name  string `json:"name"`
	Held  bool   `json:"held"`
	Owner string `json:"owner,omitempty"`
	Token int64  `json:"token,omitempty"`
	TTLMS int64  `json:"ttl_ms,omitempty"`
}

// CronTask is the last run of one cron task.
type CronTask struct {
	Task       string    `json:"task"`
	Started    time.Time `json:"started"`
	DurationMS int64     `json:"duration_ms"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
	Token      int64     `json:"token"`
	Owner      string    `json:"owner"`
}

// NewCmd returns the status command; runF replaces the action in tests.
func NewCmd(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{Factory: f, Timeout: source.DefaultTimeout}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show processes, leases, cron tasks, schema version and database/Redis health",
		Long: "Show the postald processes that have a live heartbeat, who holds the cron and requeuer leases\n" +
			"(owner, fencing token, time left), the last run of every cron task, the schema version and\n" +
			"whether the database and Redis answer. Exits 1 when either does not answer or the schema is\n" +
			"not current.",
		Args: cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return Run(cmd.Context(), o)
		},
	}
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for the database and for Redis")
	return cmd
}

// Run prints the status and returns an error naming every problem found.
func Run(ctx context.Context, o *Options) error {
	f := o.Factory
	if o.Timeout <= 0 {
		return cli.Usagef("--timeout must be positive")
	}
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	rdb, keys, err := f.Redis()
	if err != nil {
		return &cli.ConfigError{Err: err}
	}
	lo := source.LiveOptions{Redis: rdb, Keys: keys, Timeout: o.Timeout, DeadLetters: 1, Now: f.Now}
	openCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	st, err := f.RawStore(openCtx)
	cancel()
	if err != nil {
		lo.StoreErr = err
	} else {
		lo.Store = st
	}
	snap, err := source.NewLive(lo).Snapshot(ctx)
	if err != nil {
		return err
	}
	res := FromSnapshot(snap, cfg.Database.Driver)
	res.KeyPrefix = keyPrefix(ctx, o.Timeout, st, lo, res)
	if err := f.Render(res, func(w io.Writer) { printHuman(w, res) }); err != nil {
		return err
	}
	return res.Problem()
}

// keyPrefix reads this installation's id and the prefix's recorded owner
// when both sides answer and the schema has the installation table.
func keyPrefix(ctx context.Context, timeout time.Duration, st *store.Store, lo source.LiveOptions, r Result) KeyPrefix {
	kp := KeyPrefix{Prefix: lo.Keys.Name()}
	if st == nil || !r.Database.OK || !r.Database.SchemaUpToDate || !r.Redis.OK {
		kp.Error = "unknown: needs the database at the current schema and Redis"
		return kp
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id, err := st.InstallationID(ctx)
	if err != nil {
		kp.Error = err.Error()
		return kp
	}
	owner, err := redisconn.PrefixOwner(ctx, lo.Redis, lo.Keys)
	if err != nil {
		kp.Error = err.Error()
		return kp
	}
	kp.ThisInstallation, kp.OwnedBy, kp.Ours = id, owner, owner == "" || owner == id
	return kp
}

// FromSnapshot converts a snapshot to the command's output.
func FromSnapshot(s source.Snapshot, driver string) Result {
	r := Result{
		Database:  Database{OK: s.Database.OK, Error: s.Database.Error, Driver: driver},
		Redis:     Health{OK: s.Redis.OK, Error: s.Redis.Error},
		Processes: []Process{},
		Leases:    []Lease{},
		Cron:      []CronTask{},
	}
	if s.Schema != nil {
		r.Database.SchemaCurrent, r.Database.SchemaLatest = s.Schema.Current, s.Schema.Latest
		r.Database.SchemaUpToDate = s.Schema.UpToDate()
	}
	for _, p := range s.Processes {
		r.Processes = append(r.Processes, Process{ID: p.ID, Host: p.Host, PID: p.PID, Roles: p.Roles, Version: p.Version,
			Started: p.Started, Seen: p.Seen})
	}
	for _, l := range s.Leases {
		r.Leases = append(r.Leases, Lease{Name: l.Name, Held: l.Held(), Owner: l.Owner, Token: l.Token, TTLMS: l.TTL.Milliseconds()})
	}
	for _, t := range s.Cron {
		r.Cron = append(r.Cron, CronTask{Task: t.Task, Started: t.Last.Started, DurationMS: t.Last.Duration.Milliseconds(),
			OK: t.Last.OK, Error: t.Last.Error, Token: t.Last.Token, Owner: t.Last.Owner})
	}
	return r
}

// Problem returns nil when everything is healthy, else one error naming
// each problem and what to do about it.
func (r Result) Problem() error {
	var p []string
	switch {
	case !r.Database.OK:
		p = append(p, "the database is unreachable: "+r.Database.Error)
	case r.Database.SchemaCurrent < r.Database.SchemaLatest:
		p = append(p, fmt.Sprintf("the schema is at version %d of %d: run `postalctl upgrade`", r.Database.SchemaCurrent, r.Database.SchemaLatest))
	case r.Database.SchemaCurrent > r.Database.SchemaLatest:
		p = append(p, fmt.Sprintf("the schema (version %d) is newer than this postalctl (%d): upgrade postalctl", r.Database.SchemaCurrent, r.Database.SchemaLatest))
	}
	if !r.Redis.OK {
		p = append(p, "Redis is unreachable: "+r.Redis.Error)
	}
	if kp := r.KeyPrefix; kp.OwnedBy != "" && !kp.Ours {
		p = append(p, fmt.Sprintf("redis key prefix %q belongs to another installation (%s), so postald will not start: "+
			"give this one its own redis.key_prefix, or run `postalctl queue reset` once the other is gone for good", kp.Prefix, kp.OwnedBy))
	}
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "; "))
}

func printHuman(w io.Writer, r Result) {
	db := "ok"
	if !r.Database.OK {
		db = "UNREACHABLE: " + r.Database.Error
	}
	fmt.Fprintf(w, "Database:\t%s (%s)\n", db, r.Database.Driver)
	if r.Database.OK {
		state := "current"
		if !r.Database.SchemaUpToDate {
			state = "NOT CURRENT"
		}
		fmt.Fprintf(w, "Schema:\tversion %d of %d, %s\n", r.Database.SchemaCurrent, r.Database.SchemaLatest, state)
	}
	if !r.Redis.OK {
		fmt.Fprintf(w, "Redis:\tUNREACHABLE: %s\n", r.Redis.Error)
		fmt.Fprintln(w, "\nProcesses, leases and cron records live in Redis and cannot be shown.")
		return
	}
	fmt.Fprintln(w, "Redis:\tok")
	switch kp := r.KeyPrefix; {
	case kp.Error != "":
		fmt.Fprintf(w, "Prefix:\t%s, owner %s\n", kp.Prefix, kp.Error)
	case !kp.Ours:
		fmt.Fprintf(w, "Prefix:\t%s, OWNED BY ANOTHER INSTALLATION (%s; this one is %s)\n", kp.Prefix, kp.OwnedBy, kp.ThisInstallation)
	case kp.OwnedBy == "":
		fmt.Fprintf(w, "Prefix:\t%s, not claimed yet (postald claims it for installation %s)\n", kp.Prefix, kp.ThisInstallation)
	default:
		fmt.Fprintf(w, "Prefix:\t%s, this installation's (%s)\n", kp.Prefix, kp.ThisInstallation)
	}

	fmt.Fprintln(w)
	if len(r.Processes) == 0 {
		fmt.Fprintln(w, "No postald process has a live heartbeat.")
	} else {
		fmt.Fprintln(w, "PROCESS\tROLES\tVERSION\tSTARTED\tLAST SEEN")
		for _, p := range r.Processes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.ID, strings.Join(p.Roles, ","), p.Version, cli.FormatTime(p.Started), cli.FormatTime(p.Seen))
		}
	}

	fmt.Fprintln(w, "\nLEASE\tHOLDER\tTOKEN\tTTL")
	for _, l := range r.Leases {
		if !l.Held {
			fmt.Fprintf(w, "%s\t(none)\t-\t-\n", l.Name)
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", l.Name, l.Owner, l.Token, (time.Duration(l.TTLMS) * time.Millisecond).Round(100*time.Millisecond))
	}

	fmt.Fprintln(w)
	if len(r.Cron) == 0 {
		fmt.Fprintln(w, "No cron task has run yet.")
		return
	}
	fmt.Fprintln(w, "CRON TASK\tLAST RUN\tDURATION\tRESULT\tTOKEN")
	for _, t := range r.Cron {
		result := "ok"
		if !t.OK {
			result = "failed: " + t.Error
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", t.Task, cli.FormatTime(t.Started), time.Duration(t.DurationMS)*time.Millisecond, result, t.Token)
	}
}
