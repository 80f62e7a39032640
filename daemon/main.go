package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// Version is the build's version, set with
// -ldflags "-X github.com/postalgo/postal/daemon.Version=...".
var Version = "dev"

// Role names, as Postal names its processes.
const (
	RoleWebServer  = "web-server"
	RoleSMTPServer = "smtp-server"
	RoleWorker     = "worker"
	RoleCron       = "cron"
	RoleRequeuer   = "requeuer"
)

// AllRoles lists every role in start order.
func AllRoles() []string {
	return []string{RoleWebServer, RoleSMTPServer, RoleWorker, RoleCron, RoleRequeuer}
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError is a command line or configuration problem: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// Env is what postald reads from its surroundings.
type Env struct {
	Lookup func(string) (string, bool)
	Stdout io.Writer
	Stderr io.Writer
	// StderrTerminal selects text logs in logging.format auto.
	StderrTerminal bool
}

// Main runs postald with args (without the program name) and returns the
// process exit code. ctx ends on SIGTERM/SIGINT.
func Main(ctx context.Context, args []string, env Env) int {
	opts, err := parseArgs(args, env.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(env.Stderr, "postald: "+err.Error())
		return exitUsage
	}
	if opts.version {
		fmt.Fprintln(env.Stdout, "postald "+Version)
		return exitOK
	}
	opts.env = env
	if opts.CPUProfile != "" {
		stop, err := startCPUProfile(opts.CPUProfile)
		if err != nil {
			fmt.Fprintln(env.Stderr, "postald: "+err.Error())
			return exitFailure
		}
		defer stop()
	}
	if err := Run(ctx, opts); err != nil {
		fmt.Fprintln(env.Stderr, "postald: "+strings.ReplaceAll(err.Error(), "\n", "\n  "))
		var u *usageError
		if errors.As(err, &u) {
			return exitUsage
		}
		return exitFailure
	}
	return exitOK
}

// Options is a parsed command line.
type Options struct {
	// Roles to run, in start order.
	Roles []string
	// ConfigPath is --config ("" = the standard lookup).
	ConfigPath string
	// Grace bounds the drain after a stop signal.
	Grace time.Duration
	// CPUProfile is --cpuprofile: a file that receives a pprof CPU profile
	// of the whole run, written when postald exits.
	CPUProfile string
	version    bool
	env        Env
}

func parseArgs(args []string, stderr io.Writer) (Options, error) {
	var (
		o     Options
		roles string
	)
	fs := flag.NewFlagSet("postald", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&roles, "role", "", "comma-separated roles to run: "+strings.Join(AllRoles(), ", ")+", or all")
	fs.StringVar(&o.ConfigPath, "config", "", "path to postal.yml (default: $POSTAL_CONFIG_FILE_PATH, /config/postal.yml, /etc/postal/postal.yml)")
	fs.DurationVar(&o.Grace, "shutdown-grace", 30*time.Second, "how long in-flight work may take to finish after SIGTERM")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a pprof CPU profile of the run to this file (for performance work)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: postald [--config FILE] --role ROLE[,ROLE...]|all\n"+
			"       postald [--config FILE] web-server|smtp-server|worker|cron|requeuer|all\n"+
			"       postald version\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	rest := fs.Args()
	if len(rest) > 0 {
		switch {
		case rest[0] == "version":
			o.version = true
			return o, nil
		case roles != "":
			return o, fmt.Errorf("give roles either with --role or as a process name, not both (got --role %s and %q)", roles, rest[0])
		default:
			roles = rest[0]
			// Allow flags after the process name: postald worker --config x.
			if err := fs.Parse(rest[1:]); err != nil {
				return o, err
			}
			if extra := fs.Args(); len(extra) > 0 {
				return o, fmt.Errorf("unexpected arguments: %s", strings.Join(extra, " "))
			}
		}
	}
	if roles == "" {
		return o, errors.New("no role given: use --role ROLE[,ROLE...] or --role all (see postald -h)")
	}
	parsed, err := ParseRoles(roles)
	if err != nil {
		return o, err
	}
	o.Roles = parsed
	return o, nil
}

// ParseRoles turns "worker,cron" or "all" into roles in start order,
// rejecting unknown names with a suggestion of the valid ones.
func ParseRoles(s string) ([]string, error) {
	want := map[string]bool{}
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		switch {
		case r == "all":
			for _, a := range AllRoles() {
				want[a] = true
			}
		case slices.Contains(AllRoles(), r):
			want[r] = true
		case r == "":
		default:
			return nil, fmt.Errorf("unknown role %q (roles: %s, all)", r, strings.Join(AllRoles(), ", "))
		}
	}
	var out []string
	for _, r := range AllRoles() {
		if want[r] {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no role given")
	}
	return out, nil
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
