package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/health"
	"github.com/postalgo/postal/daemon/intake"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/signing"
	"github.com/postalgo/postal/daemon/status"
	"github.com/postalgo/postal/daemon/store"
)

// deps is what every role may be built from; Run fills it once.
type deps struct {
	cfg      *config.Config
	log      *slog.Logger
	store    *store.Store
	redis    redis.UniversalClient
	keys     redisconn.Keys
	queue    *queue.Queue
	monitor  *health.Monitor
	registry *prometheus.Registry
	signing  *signing.Key
	// owner identifies this process in locks and heartbeats: host:pid:random.
	owner string
	roles []string
	// listen overrides the main listener of a single-role process
	// (PORT/BIND_ADDRESS); empty fields keep the configured values.
	listenPort, listenBind string
	// healthPort and healthBind are HEALTH_SERVER_PORT and
	// HEALTH_SERVER_BIND_ADDRESS (0 and "" when unset): they move the health
	// listener of any process, as in Postal.
	healthPort int
	healthBind string
	grace      time.Duration
	// intake is shared by the roles that accept mail (see intakeFor).
	intake *intake.Intake
	// services run until every role has drained.
	services []service
	// reloaders run on SIGHUP (TLS certificates).
	reloaders []func() error
	// mail counts the mail worker's batches being handled; while there are
	// any, webhook signing yields to them (see buildWebhookWorker).
	mail mailLoad
}

// role is a started role: Run blocks until the role has drained.
type role struct {
	name string
	run  func(ctx context.Context) error
}

// Run is the whole life of a postald process; it returns nil after a clean
// shutdown.
// Names of the dependency checks /ready reports.
const (
	checkDatabase = "database"
	checkSchema   = "schema"
	checkRedis    = "redis"
)

func Run(ctx context.Context, o Options) error {
	lookup := o.env.Lookup
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	path, err := config.Locate(o.ConfigPath, lookup, func(p string) bool { _, err := os.Stat(p); return err == nil })
	if err != nil && !errors.Is(err, config.ErrNotFound) {
		return &usageError{err}
	}
	cfg, err := config.Load(path, lookup)
	if err != nil {
		var p *config.Problems
		if errors.As(err, &p) {
			return &usageError{fmt.Errorf("configuration %s has %d problem(s):\n%s", displayPath(path), len(p.List), p.Error())}
		}
		return &usageError{err}
	}
	log := newLogger(cfg.Logging, o.env.Stderr, o.env.StderrTerminal)
	log.Info("postald starting", "version", Version, "roles", strings.Join(o.Roles, ","), "config", displayPath(path))
	for _, w := range cfg.Warnings {
		log.Warn("configuration warning", "key", w.Path, "warning", w.Message)
	}
	if note := cfg.PostalDatabaseNote(); note != "" {
		log.Info(note)
	}
	healthBind, healthPort, err := healthOverride(lookup)
	if err != nil {
		return &usageError{err}
	}

	targets, _ := lookup("WAIT_FOR_TARGETS")
	timeout, _ := lookup("WAIT_FOR_TIMEOUT")
	if err := waitForTargets(ctx, targets, timeout, 250*time.Millisecond); err != nil {
		return err
	}

	key, err := signing.Load(cfg.Postal.SigningKeyPath)
	if err != nil {
		return &usageError{err}
	}
	if key.Weak() {
		log.Warn("signing key is shorter than recommended; it is kept because webhook receivers and the return path's DKIM record use it, rotate it when they can be updated",
			"path", cfg.Postal.SigningKeyPath, "bits", key.Bits(), "recommended_bits", signing.MinBits)
	}

	st, err := store.Open(ctx, store.Options{Driver: store.Driver(cfg.Database.Driver), Path: cfg.Database.Path,
		URL: cfg.Database.URL, MaxOpenConns: cfg.Database.MaxOpenConnections})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := waitForSchema(ctx, st, cfg.MigrationWaiter, log); err != nil {
		return err
	}

	rdb, err := redisconn.New(redisconn.OptionsFrom(cfg.Redis))
	if err != nil {
		return &usageError{fmt.Errorf("redis: %w", err)}
	}
	defer rdb.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	keys := redisconn.NewKeys(cfg.Redis.KeyPrefix)
	host, _ := os.Hostname()
	d := &deps{
		cfg: cfg, log: log, store: st, redis: rdb, keys: keys, registry: reg, signing: key, roles: o.Roles,
		owner: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), store.RandomToken(3)),
		grace: o.Grace, healthBind: healthBind, healthPort: healthPort,
	}
	d.queue = queue.New(queue.Options{Client: rdb, Keys: keys, MaxDeliveries: int64(cfg.Worker.MaxDeliveries), Log: log, Registerer: reg})
	d.monitor = health.New(health.Options{Log: log, Gatherer: reg})
	d.monitor.Add(checkDatabase, st.Ping)
	d.monitor.Add(checkSchema, st.CheckSchema)
	d.monitor.Add(checkRedis, func(ctx context.Context) error { return redisconn.Ping(ctx, rdb) })
	if len(o.Roles) == 1 {
		d.listenPort, _ = lookup("PORT")
		d.listenBind, _ = lookup("BIND_ADDRESS")
	}

	installation, err := st.InstallationID(ctx)
	if err != nil {
		return err
	}
	if err := claimPrefix(ctx, d, installation); err != nil {
		return err
	}

	// One round of checks before any role accepts work, so Ready() reflects
	// the real state from the first connection on.
	d.monitor.RunOnce(ctx)
	roles, err := buildRoles(ctx, d)
	if err != nil {
		return err
	}
	roles = append(roles, prefixGuard(d, installation))
	healthSrv, err := startHealthServer(d)
	if err != nil {
		return err
	}
	return supervise(ctx, d, roles, healthSrv, host)
}

// supervise runs the roles and the process services until ctx ends or a
// role fails, then drains within the grace period.
func supervise(ctx context.Context, d *deps, roles []role, healthSrv *http.Server, host string) error {
	log := d.log
	svcCtx, stopSvc := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSvc()
	roleCtx, stopRoles := context.WithCancel(ctx)
	defer stopRoles()

	var svcWG sync.WaitGroup
	for _, s := range d.services {
		svcWG.Add(1)
		go func() {
			defer svcWG.Done()
			if err := s.run(svcCtx); err != nil {
				log.Error("service stopped", "service", s.name, "err", err)
			}
		}()
	}
	svcWG.Add(2)
	go func() { defer svcWG.Done(); _ = d.monitor.Run(svcCtx) }()
	go func() {
		defer svcWG.Done()
		board := status.NewBoard(d.redis, d.keys)
		err := board.Heartbeat(svcCtx, status.Process{ID: d.owner, Host: host, PID: os.Getpid(), Roles: d.roles,
			Version: Version, Started: time.Now()}, 5*time.Second, 20*time.Second)
		if err != nil && svcCtx.Err() == nil {
			log.Warn("heartbeat stopped", "err", err)
		}
	}()

	type done struct {
		name string
		err  error
	}
	finished := make(chan done, len(roles))
	for _, r := range roles {
		go func() { finished <- done{r.name, r.run(roleCtx)} }()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-svcCtx.Done():
				return
			case <-hup:
				notify(log, sddaemon.SdNotifyReloading)
				for _, reload := range d.reloaders {
					if err := reload(); err != nil {
						log.Error("reload failed", "err", err)
					}
				}
				log.Info("reloaded")
				notify(log, sddaemon.SdNotifyReady)
			}
		}
	}()
	notify(log, sddaemon.SdNotifyReady)
	stopWatchdog := startWatchdog(svcCtx, d, log)
	defer stopWatchdog()
	log.Info("postald ready", "roles", strings.Join(d.roles, ","))

	var firstErr error
	remaining := len(roles)
	select {
	case <-ctx.Done():
		log.Info("stopping: draining in-flight work", "grace", d.grace.String())
	case r := <-finished:
		remaining--
		if r.err != nil {
			firstErr = fmt.Errorf("%s: %w", r.name, r.err)
			log.Error("role failed; stopping", "role", r.name, "err", r.err)
		} else {
			log.Info("role stopped; stopping", "role", r.name)
		}
	}
	notify(log, sddaemon.SdNotifyStopping)
	stopRoles()
	deadline := time.NewTimer(d.grace)
	defer deadline.Stop()
	for remaining > 0 {
		select {
		case r := <-finished:
			remaining--
			if r.err != nil && firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", r.name, r.err)
			}
		case <-deadline.C:
			if firstErr == nil {
				firstErr = fmt.Errorf("shutdown grace of %s exceeded with %d role(s) still draining", d.grace, remaining)
			}
			remaining = 0
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = healthSrv.Shutdown(sctx)
	stopSvc()
	svcWG.Wait()
	if firstErr == nil {
		log.Info("postald stopped cleanly")
	}
	return firstErr
}

// waitForSchema refuses to start unless the schema matches the binary; with
// migration_waiter enabled it waits for `postalctl upgrade` as Postal does.
func waitForSchema(ctx context.Context, st *store.Store, w config.MigrationWaiter, log *slog.Logger) error {
	attempts := 1
	if w.Enabled {
		attempts = w.Attempts
	}
	for i := 1; ; i++ {
		err := st.CheckSchema(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, store.ErrSchemaTooNew) || i >= attempts {
			return err
		}
		log.Info("waiting for schema migrations", "attempt", i, "of", attempts, "reason", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(w.SleepTime.Duration()):
		}
	}
}

// healthAddr picks the process's health listener: the smtp-server's health
// settings for an smtp-server-only process, the worker's otherwise;
// PORT/BIND_ADDRESS move it for single-role processes without a listener
// of their own.
func healthAddr(d *deps) string {
	bind, port := d.cfg.Worker.DefaultHealthServerBindAddress, d.cfg.Worker.DefaultHealthServerPort
	if len(d.roles) == 1 && d.roles[0] == RoleSMTPServer {
		bind, port = d.cfg.SMTPServer.DefaultHealthServerBindAddress, d.cfg.SMTPServer.DefaultHealthServerPort
	}
	if len(d.roles) == 1 && (d.roles[0] == RoleWorker || d.roles[0] == RoleCron || d.roles[0] == RoleRequeuer) {
		if d.listenBind != "" {
			bind = d.listenBind
		}
		if d.listenPort != "" {
			if p, err := strconv.Atoi(d.listenPort); err == nil {
				port = p
			}
		}
	}
	if d.healthBind != "" {
		bind = d.healthBind
	}
	if d.healthPort != 0 {
		port = d.healthPort
	}
	return net.JoinHostPort(bind, strconv.Itoa(port))
}

// healthOverride reads HEALTH_SERVER_PORT and HEALTH_SERVER_BIND_ADDRESS,
// which Postal's processes honour so several of them (workers, say) can run
// on one host with distinct health ports. Unset gives 0 and "".
func healthOverride(lookup func(string) (string, bool)) (bind string, port int, err error) {
	if v, ok := lookup("HEALTH_SERVER_PORT"); ok && strings.TrimSpace(v) != "" {
		port, err = strconv.Atoi(strings.TrimSpace(v))
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("HEALTH_SERVER_PORT: %q is not a port (1-65535)", v)
		}
	}
	if v, ok := lookup("HEALTH_SERVER_BIND_ADDRESS"); ok && strings.TrimSpace(v) != "" {
		bind = strings.TrimSpace(v)
		if net.ParseIP(bind) == nil {
			return "", 0, fmt.Errorf("HEALTH_SERVER_BIND_ADDRESS: %q is not an IP address", v)
		}
	}
	return bind, port, nil
}

func startHealthServer(d *deps) (*http.Server, error) {
	addr := healthAddr(d)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health server: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: d.monitor.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("health server failed", "err", err)
		}
	}()
	d.log.Info("health server listening", "addr", ln.Addr().String())
	return srv, nil
}

// listenAddr applies PORT/BIND_ADDRESS to a role's configured listener.
func listenAddr(d *deps, bind string, port int) string {
	if d.listenBind != "" {
		bind = d.listenBind
	}
	if d.listenPort != "" {
		if p, err := strconv.Atoi(d.listenPort); err == nil {
			port = p
		}
	}
	return net.JoinHostPort(bind, strconv.Itoa(port))
}

func notify(log *slog.Logger, state string) {
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// startWatchdog pings systemd's watchdog at half its interval while the
// health checks keep running (a wedged process stops pinging).
func startWatchdog(ctx context.Context, d *deps, log *slog.Logger) func() {
	interval, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				notify(log, sddaemon.SdNotifyWatchdog)
			}
		}
	}()
	return cancel
}

func displayPath(p string) string {
	if p == "" {
		return "(defaults)"
	}
	return p
}
