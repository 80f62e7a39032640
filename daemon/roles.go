package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/api"
	"github.com/postalgo/postal/daemon/cron"
	"github.com/postalgo/postal/daemon/dnscheck"
	"github.com/postalgo/postal/daemon/endpoint"
	"github.com/postalgo/postal/daemon/inbound"
	"github.com/postalgo/postal/daemon/inspect"
	"github.com/postalgo/postal/daemon/intake"
	"github.com/postalgo/postal/daemon/lease"
	"github.com/postalgo/postal/daemon/libcrypto"
	"github.com/postalgo/postal/daemon/outbound"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/ratelimit"
	"github.com/postalgo/postal/daemon/requeuer"
	"github.com/postalgo/postal/daemon/smtpserver"
	"github.com/postalgo/postal/daemon/status"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/tracker"
	"github.com/postalgo/postal/daemon/webhook"
	"github.com/postalgo/postal/daemon/webhookworker"
	"github.com/postalgo/postal/daemon/webserver"
	"github.com/postalgo/postal/daemon/worker"
)

// TaskCheckAllDNS is the cron task that re-checks domains' DNS records.
const TaskCheckAllDNS = "check_all_dns"

// TaskPruneAPIIdempotencyKeys is the cron task that forgets HTTP API
// Idempotency-Keys older than store.IdempotencyWindow.
const TaskPruneAPIIdempotencyKeys = "prune_api_idempotency_keys"

// service is a process-wide helper that must outlive the roles (it is
// stopped only after every role has drained).
type service struct {
	name string
	run  func(ctx context.Context) error
}

// intakeFor returns the process's intake, creating it (and its service) on
// first use: the smtp-server submits through it, and the worker dispatches
// the work its outcome commits create through its dispatcher.
func (d *deps) intakeFor() *intake.Intake {
	if d.intake == nil {
		// One committer on both databases: while it commits, the next batch
		// gathers everything that arrives, so batches grow with load. On
		// PostgreSQL three committers made batches of 3-4 submissions and
		// cost a third more database CPU per message (README, Performance).
		d.intake = intake.New(intake.Options{Store: d.store, Queue: d.queue, Log: d.log.With("component", "intake"),
			Registerer: d.registry})
		d.services = append(d.services, service{"intake", d.intake.Run})
	}
	return d.intake
}

// buildRoles constructs the selected roles (binding their listeners, so a
// port conflict fails startup) in start order.
func buildRoles(_ context.Context, d *deps) ([]role, error) {
	var out []role
	for _, name := range d.roles {
		log := d.log.With("role", name)
		switch name {
		case RoleWebServer:
			h, err := buildAPI(d, log.With("component", "api"))
			if err != nil {
				return nil, err
			}
			th := tracker.NewHandler(tracker.HandlerOptions{Store: d.store, Webhooks: d.queue,
				TrustedProxies: trustedProxies(d), Log: log.With("component", "tracking")})
			ws, err := webserver.New(webserver.Options{
				Addr:   listenAddr(d, d.cfg.WebServer.DefaultBindAddress, d.cfg.WebServer.DefaultPort),
				Health: d.monitor, JWKS: d.signing.JWKS(), API: h, Tracking: th, Log: log, Grace: d.grace,
			})
			if err != nil {
				return nil, err
			}
			out = append(out, role{name, ws.Run})
		case RoleSMTPServer:
			r, err := buildSMTPServer(d, d.log) // the server adds role itself
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		case RoleWorker:
			r, err := buildWorker(d)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
			wr, err := buildWebhookWorker(d)
			if err != nil {
				return nil, err
			}
			out = append(out, wr)
		case RoleRequeuer:
			l := lease.New(lease.Options{Client: d.redis, Keys: d.keys, Name: "requeuer", Owner: d.owner,
				TTL: d.cfg.Requeuer.LockTTL.Duration(), Log: log})
			rq, err := requeuer.New(requeuer.Options{Config: d.cfg.Requeuer, Worker: d.cfg.Worker, Store: d.store,
				Queue: d.queue, Lease: l, Log: log, Registerer: d.registry})
			if err != nil {
				return nil, fmt.Errorf("requeuer: %w", err)
			}
			out = append(out, role{name, rq.Run})
		case RoleCron:
			r, err := buildCron(d)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// buildAPI builds the HTTP API v1 handler the web-server mounts: it
// submits through the process's intake and shares its rate limit through
// Redis.
func buildAPI(d *deps, log *slog.Logger) (*api.Handler, error) {
	c := d.cfg.WebServer
	var limiter api.Limiter
	if c.APIRateLimit > 0 {
		w, err := ratelimit.New(ratelimit.Options{Client: d.redis, Keys: d.keys, Name: "api-requests",
			Max: c.APIRateLimit, Window: max(c.APIRateLimitWindow.Duration(), time.Second)})
		if err != nil {
			return nil, fmt.Errorf("web-server: %w", err)
		}
		limiter = w
	}
	proxies := trustedProxies(d)
	h, err := api.New(api.Options{
		Store: d.store, Intake: d.intakeFor(), Limiter: limiter, RetryAfter: c.APIRateLimitWindow.Duration(),
		WebHostname: d.cfg.Postal.WebHostname, ReturnPathDomain: d.cfg.DNS.ReturnPathDomain, TrustedProxies: proxies,
		MaxBodyBytes: int64(c.APIMaxBodySize) << 20, DNSTimeout: d.cfg.DNS.Timeout.Duration(), Log: log, Registerer: d.registry,
	})
	if err != nil {
		return nil, fmt.Errorf("web-server: %w", err)
	}
	return h, nil
}

// trustedProxies parses postal.trusted_proxies (validated by config).
func trustedProxies(d *deps) []netip.Prefix {
	var proxies []netip.Prefix
	for _, p := range d.cfg.Postal.TrustedProxies {
		if pr, err := netip.ParsePrefix(p); err == nil {
			proxies = append(proxies, pr.Masked())
		} else if a, err := netip.ParseAddr(p); err == nil {
			proxies = append(proxies, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return proxies
}

func buildWorker(d *deps) (role, error) {
	log := d.log.With("role", RoleWorker)
	// A record outlives any way its row can be taken over: the dead
	// worker's lock and entries expire after the visibility timeout.
	journal, err := d.queue.Journal(queue.Outgoing, 3*d.cfg.Worker.VisibilityTimeout.Duration()+time.Minute)
	if err != nil {
		return role{}, fmt.Errorf("worker: sent-journal: %w", err)
	}
	inspector, acceptUnscanned := newInspector(d.cfg), d.cfg.Inspection.WhenUnavailable == "accept"
	proc, err := outbound.New(outbound.Options{
		Postal: d.cfg.Postal, DNS: d.cfg.DNS, SMTPClient: d.cfg.SMTPClient, Store: d.store, Journal: journal,
		Inspector: inspector, AcceptUnscanned: acceptUnscanned,
		Log: log.With("component", "outbound"), Registerer: d.registry,
		Keys:           dkimKeys(d.cfg.Worker, log),
		Tracker:        tracker.NewTracker(d.store, log.With("component", "tracking")),
		MaxHeaderBytes: d.cfg.SMTPServer.MaxHeaderBytes, MaxHeaderLines: d.cfg.SMTPServer.MaxHeaderLines,
	})
	if err != nil {
		return role{}, fmt.Errorf("worker: outbound: %w", err)
	}
	endpoints, err := endpoint.New(endpoint.Options{Signer: webhookSigner(d, log), UserAgent: "Postal/" + Version})
	if err != nil {
		_ = proc.Close()
		return role{}, fmt.Errorf("worker: endpoints: %w", err)
	}
	incoming, err := inbound.New(inbound.Options{Store: d.store, HTTP: endpoints, SMTP: proc, Log: log,
		MaxAttempts:      d.cfg.Postal.DefaultMaximumDeliveryAttempts,
		HoldExpiry:       time.Duration(d.cfg.Postal.DefaultMaximumHoldExpiryDays) * 24 * time.Hour,
		ReturnPathDomain: d.cfg.DNS.ReturnPathDomain, WebHostname: d.cfg.Postal.WebHostname,
		SuppressHardBounces: d.cfg.Worker.SuppressHardBounces,
		SuppressFor:         time.Duration(d.cfg.Postal.DefaultSuppressionListAutomaticRemovalDays) * 24 * time.Hour,
		Inspector:           inspector, AcceptUnscanned: acceptUnscanned})
	if err != nil {
		_ = proc.Close()
		return role{}, fmt.Errorf("worker: inbound: %w", err)
	}
	w, err := worker.New(worker.Options{
		Config: d.cfg.Worker, Postal: d.cfg.Postal, Store: d.store, Queue: d.queue, Owner: d.owner, Grace: d.grace,
		Dispatcher: d.intakeFor(), Liveness: status.NewBoard(d.redis, d.keys),
		Handlers: map[queue.Kind]worker.Handler{queue.Outgoing: d.mail.track(proc), queue.Incoming: d.mail.track(incoming)},
		Journals: map[queue.Kind]worker.Journal{queue.Outgoing: journal},
		Log:      log, Registerer: d.registry,
	})
	if err != nil {
		_ = proc.Close()
		return role{}, fmt.Errorf("worker: %w", err)
	}
	return role{RoleWorker, func(ctx context.Context) error {
		defer proc.Close()
		defer endpoints.Close()
		return w.Run(ctx)
	}}, nil
}

// buildWebhookWorker builds the worker role's consumer of the webhooks
// stream (daemon/webhookworker); it runs beside the mail worker and yields
// to it: while the mail worker of this process has deliveries in flight,
// webhook signing is paced to webhook.DefaultFloorShare of one CPU (mail
// first; webhooks lag under saturation by design and catch up after).
func buildWebhookWorker(d *deps) (role, error) {
	log := d.log.With("role", RoleWorker, "component", "webhooks")
	client, err := webhook.NewClient(webhook.ClientOptions{Signer: webhookSigner(d, log), UserAgent: "Postal/" + Version,
		MaxIdlePerHost: d.cfg.Webhooks.PerDestination, Busy: d.mail.busy})
	if err != nil {
		return role{}, fmt.Errorf("worker: webhooks: %w", err)
	}
	ww, err := webhookworker.New(webhookworker.Options{Store: d.store, Queue: d.queue, Sender: client, Owner: d.owner,
		MaxInFlight: d.cfg.Webhooks.MaxInFlight, PerDestination: d.cfg.Webhooks.PerDestination,
		VisibilityTimeout: d.cfg.Worker.VisibilityTimeout.Duration(), Grace: d.grace, Log: log, Registerer: d.registry})
	if err != nil {
		return role{}, fmt.Errorf("worker: webhooks: %w", err)
	}
	return role{RoleWorker + "/webhooks", func(ctx context.Context) error {
		defer client.Close()
		return ww.Run(ctx)
	}}, nil
}

// mailLoad counts the mail worker's batches being handled in this process.
type mailLoad struct{ n atomic.Int64 }

// track wraps h so that mailLoad counts its calls in progress.
func (l *mailLoad) track(h worker.Handler) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome {
		l.n.Add(1)
		defer l.n.Add(-1)
		return h.Handle(ctx, batch)
	})
}

// busy reports whether mail deliveries are in flight.
func (l *mailLoad) busy() bool { return l.n.Load() > 0 }

// webhookSigner signs webhook requests through libcrypto (same bytes,
// about four times faster) under the same switch as DKIM,
// worker.dkim_openssl, and with crypto/rsa otherwise. The libcrypto
// signatures are made at a lower CPU priority (a background signer): two
// per request cost as much as two DKIM signatures, and under load they
// wait for the mail being relayed instead of slowing it.
func webhookSigner(d *deps, log *slog.Logger) webhook.Signer {
	if !d.cfg.Worker.DKIMOpenSSL {
		return d.signing
	}
	lib, err := libcrypto.Open()
	if err != nil {
		return d.signing
	}
	s, err := lib.NewBackgroundSigner(d.signing.Private())
	if err != nil {
		log.Warn("webhook signing with crypto/rsa: libcrypto refused the signing key", "reason", err)
		return d.signing
	}
	return webhook.NewCryptoSigner(s, d.signing.KID(), d.signing)
}

func buildCron(d *deps) (role, error) {
	log := d.log.With("role", RoleCron)
	tasks := cron.DefaultTasks(d.store, d.cfg.Postal, log, nil)
	resolvers, err := dnscheck.NewResolvers(dnscheck.Options{DNS: d.cfg.DNS, UseLocalNS: d.cfg.Postal.UseLocalNSForDomainVerification})
	if err != nil {
		return role{}, fmt.Errorf("cron: dns: %w", err)
	}
	tasks = append(tasks, cron.Task{Name: TaskCheckAllDNS, Every: time.Hour, Offset: 5 * time.Minute,
		Run: func(ctx context.Context) error {
			return dnscheck.CheckAll(ctx, d.store, resolvers, d.cfg.DNS, time.Now(), dnscheck.DNSErrorWebhooks(d.store, d.queue, log))
		}})
	tasks = append(tasks, cron.Task{Name: TaskPruneAPIIdempotencyKeys, Every: time.Hour, Offset: 30 * time.Minute,
		Run: func(ctx context.Context) error {
			n, err := d.store.PruneIdempotencyKeys(ctx, time.Now().Add(-store.IdempotencyWindow))
			if n > 0 {
				log.Info("pruned API idempotency keys", "keys", n)
			}
			return err
		}})
	tasks = append(tasks, cron.PruneWebhookRequestsTask(d.store, d.cfg.Webhooks.LogRetentionDays, log, nil))
	l := lease.New(lease.Options{Client: d.redis, Keys: d.keys, Name: "cron", Owner: d.owner,
		TTL: d.cfg.Cron.LockTTL.Duration(), Log: log})
	c, err := cron.New(cron.Options{Board: status.NewBoard(d.redis, d.keys), Lease: l, Tasks: tasks, Log: log, Registerer: d.registry})
	if err != nil {
		return role{}, fmt.Errorf("cron: %w", err)
	}
	return role{RoleCron, c.Run}, nil
}

// acceptReady reports whether mail may be accepted: SQL, the record, must be
// up and migrated. Redis is not asked: intake answers once SQL commits and
// dispatch catches up through reconciliation when Redis returns (/ready
// still reports Redis).
func (d *deps) acceptReady() error {
	return d.monitor.ReadyOf(checkDatabase, checkSchema)
}

func buildSMTPServer(d *deps, log *slog.Logger) (role, error) {
	c := d.cfg.SMTPServer
	addr := listenAddr(d, c.DefaultBindAddress, c.DefaultPort)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return role{}, fmt.Errorf("smtp-server: listen on %s: %w", addr, err)
	}
	authFailures, err := ratelimit.New(ratelimit.Options{Client: d.redis, Keys: d.keys, Name: "smtp-auth-failures",
		Max: max(c.AuthMaxFailures, 1), Window: max(c.AuthFailureWindow.Duration(), time.Second)})
	if err != nil {
		_ = ln.Close()
		return role{}, fmt.Errorf("smtp-server: %w", err)
	}
	srv, err := smtpserver.New(smtpserver.Options{
		Config: c, Postal: d.cfg.Postal, DNS: d.cfg.DNS, Store: d.store, Intake: d.intakeFor(),
		Ready: d.acceptReady, Log: log, Registerer: d.registry, Listener: ln, ShutdownGrace: d.grace,
		AuthFailures: authFailures,
	})
	if err != nil {
		_ = ln.Close()
		return role{}, fmt.Errorf("smtp-server: %w", err)
	}
	d.reloaders = append(d.reloaders, srv.Reload)
	log.Info("smtp-server listening", "addr", ln.Addr().String())
	return role{RoleSMTPServer, srv.Run}, nil
}

// dkimKeys returns the system's libcrypto to sign DKIM with, or nil (sign
// with crypto/rsa) when worker.dkim_openssl is off or none can be loaded.
// The choice is logged: it decides most of a worker's CPU per message.
func dkimKeys(c config.Worker, log *slog.Logger) outbound.KeyHolder {
	if !c.DKIMOpenSSL {
		log.Info("dkim signing with crypto/rsa", "reason", "worker.dkim_openssl is false")
		return nil
	}
	lib, err := libcrypto.Open()
	if err != nil {
		log.Warn("dkim signing with crypto/rsa, about four times slower than libcrypto", "reason", err)
		return nil
	}
	log.Info("dkim signing with libcrypto", "version", lib.Version())
	return lib
}

// newInspector builds the scanners config enables, as Postal chooses them:
// rspamd if enabled, else spamd; ClamAV beside either. It returns nil when
// none is enabled.
func newInspector(cfg *config.Config) *inspect.Inspector {
	var spam inspect.SpamChecker
	switch {
	case cfg.Rspamd.Enabled:
		scheme := "http"
		if cfg.Rspamd.SSL {
			scheme = "https"
		}
		spam = &inspect.Rspamd{URL: scheme + "://" + net.JoinHostPort(cfg.Rspamd.Host, strconv.Itoa(cfg.Rspamd.Port)),
			Password: cfg.Rspamd.Password, Flags: cfg.Rspamd.Flags, Timeout: cfg.Rspamd.Timeout.Duration()}
	case cfg.Spamd.Enabled:
		spam = &inspect.Spamd{Addr: net.JoinHostPort(cfg.Spamd.Host, strconv.Itoa(cfg.Spamd.Port)), Timeout: cfg.Spamd.Timeout.Duration()}
	}
	var virus *inspect.ClamAV
	if cfg.ClamAV.Enabled {
		virus = &inspect.ClamAV{Addr: net.JoinHostPort(cfg.ClamAV.Host, strconv.Itoa(cfg.ClamAV.Port)), Timeout: cfg.ClamAV.Timeout.Duration()}
	}
	return inspect.New(spam, virus, cfg.Inspection.MaxMessageBytes())
}
