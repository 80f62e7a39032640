// Package importpostal is `postalctl import-postal`: it reads a Postal 2/3
// installation's MariaDB (main_db, and each server's message database for
// its suppression list) and writes what it finds into this installation's
// store through store.Import.
//
// Guarantees: records keep the identities their users rely on (server
// tokens, so return-path addresses keep working; DKIM keys, selectors and
// verification state, so published DNS stays valid; credential keys, stored
// as hashes, so API, SMTP and SMTP-IP clients keep authenticating; route
// tokens). Records are matched by Postal's uuid, so running the import again
// updates what changed in Postal and reports the rest as unchanged. One
// import is one transaction: it lands whole or not at all. --dry-run runs
// the same transaction and rolls it back, printing the plan.
package importpostal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// Options are the parsed arguments of `import-postal`.
type Options struct {
	Factory *cli.Factory
	DryRun  bool
	// Overrides of main_db/message_db; zero values keep the configuration's.
	Host, Username, Password, Database, MessagePrefix string
	Port                                              int
	// passwordSet tells an empty --password from none.
	passwordSet bool
}

// NewCmd returns the import-postal command; runF replaces the run in tests
// of the argument parsing.
func NewCmd(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "import-postal",
		Short: "Import organisations, servers, domains, credentials, routes... from a Postal installation's MariaDB",
		Long: "Reads Postal's MariaDB (main_db and message_db in postal.yml, or the flags) and creates or updates\n" +
			"everything it finds here, keeping server tokens, DKIM keys and selectors, credential keys and route\n" +
			"tokens. Safe to run again: records are matched by Postal's uuid and only changes are written.",
		Args: cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.passwordSet = cmd.Flags().Changed("password")
			if o.Port < 0 || o.Port > 65535 {
				return cli.Usagef("--port %d: want 1-65535", o.Port)
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return run(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.DryRun, "dry-run", false, "print what would change and write nothing")
	fl.StringVar(&o.Host, "host", "", "MariaDB host of Postal's databases (default: main_db.host)")
	fl.IntVar(&o.Port, "port", 0, "MariaDB port (default: main_db.port)")
	fl.StringVar(&o.Username, "username", "", "MariaDB user (default: main_db.username)")
	fl.StringVar(&o.Password, "password", "", "MariaDB password (default: main_db.password; MAIN_DB_PASSWORD also works)")
	fl.StringVar(&o.Database, "database", "", "Postal's main database (default: main_db.database)")
	fl.StringVar(&o.MessagePrefix, "message-db-prefix", "", "prefix of the per-server message databases (default: message_db.database_name_prefix)")
	return cmd
}

// source combines the configuration with the flags.
func (o *Options) source() (Source, error) {
	cfg, err := o.Factory.Config()
	if err != nil {
		return Source{}, err
	}
	m, msg := cfg.MainDB, cfg.MessageDB
	src := Source{
		Main:          Conn{Host: m.Host, Port: m.Port, Username: m.Username, Password: m.Password},
		MainDatabase:  m.Database,
		Message:       Conn{Host: msg.Host, Port: msg.Port, Username: msg.Username, Password: msg.Password},
		MessagePrefix: msg.DatabaseNamePrefix,
	}
	for _, c := range []*Conn{&src.Main, &src.Message} {
		if o.Host != "" {
			c.Host = o.Host
		}
		if o.Port != 0 {
			c.Port = o.Port
		}
		if o.Username != "" {
			c.Username = o.Username
		}
		if o.passwordSet {
			c.Password = o.Password
		}
	}
	if o.Database != "" {
		src.MainDatabase = o.Database
	}
	if o.MessagePrefix != "" {
		src.MessagePrefix = o.MessagePrefix
	}
	return src, nil
}

func run(ctx context.Context, o *Options) error {
	src, err := o.source()
	if err != nil {
		return err
	}
	st, err := o.Factory.Store(ctx)
	if err != nil {
		return err
	}
	snap, err := Read(ctx, src)
	var schemaErr *SchemaError
	var unreachable *UnreachableError
	switch {
	case errors.As(err, &unreachable), errors.As(err, &schemaErr):
		return err
	case err != nil:
		return fmt.Errorf("read Postal's database: %w", err)
	}
	rep, err := Apply(ctx, st, snap, fmt.Sprintf("%s at %s", src.MainDatabase, src.Main.Addr()), o.DryRun)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("import (nothing was written): %w; something created here by hand has the same permalink, name, token or key: rename or remove it, then import again", err)
	}
	if err != nil {
		return fmt.Errorf("import (nothing was written): %w", err)
	}
	f := o.Factory
	if f.JSON {
		return cli.WriteJSON(f.IO.Out, rep)
	}
	writeReport(f.IO.Out, rep)
	for _, w := range rep.Warnings {
		fmt.Fprintf(f.IO.ErrOut, "warning: %s\n", w)
	}
	return nil
}

// writeReport prints the report for people: the changes, then a table of
// counts.
func writeReport(w io.Writer, rep *Report) {
	switch {
	case rep.DryRun && rep.Changed():
		fmt.Fprintf(w, "Plan for importing Postal's %s (dry run: nothing written):\n", rep.Source)
	case rep.DryRun:
		fmt.Fprintf(w, "Nothing to import from Postal's %s: everything already matches (dry run).\n", rep.Source)
	case rep.Changed():
		fmt.Fprintf(w, "Imported from Postal's %s:\n", rep.Source)
	default:
		fmt.Fprintf(w, "Nothing changed: everything already matches Postal's %s.\n", rep.Source)
	}
	for _, c := range rep.Changes {
		fmt.Fprintf(w, "  %-9s %-14s %s\n", c.Action, singular(c.Kind), c.Name)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nKIND\tCREATED\tUPDATED\tUNCHANGED")
	for _, k := range Kinds {
		c := rep.Counts[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", k, c.Created, c.Updated, c.Unchanged)
	}
	_ = tw.Flush()
}

func singular(kind string) string {
	switch kind {
	case "ip_addresses":
		return "ip_address"
	case "endpoints", "routes", "route_endpoints", "webhooks", "ip_pools", "ip_pool_rules", "track_domains", "domains", "credentials", "servers",
		"suppressions":
		return kind[:len(kind)-1]
	case "organizations":
		return "organization"
	}
	return kind
}
