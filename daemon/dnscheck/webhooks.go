package dnscheck

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/webhook"
)

// WebhookStore is what DNSErrorWebhooks needs of the database (package store).
type WebhookStore interface {
	ServerByID(ctx context.Context, id int64) (*store.Server, error)
	Webhooks(ctx context.Context, serverID int64) ([]*store.Webhook, error)
	InsertWebhookRequests(ctx context.Context, reqs []store.NewWebhookRequest) ([]int64, error)
}

// Dispatcher adds dispatch entries (*queue.Queue).
type Dispatcher interface {
	Enqueue(ctx context.Context, kind queue.Kind, jobs ...queue.Job) error
}

// DNSErrorWebhooks returns the onProblem hook of CheckAll that fires
// Postal's DomainDNSError: one webhook request per enabled webhook of the
// domain's server subscribed to it, stored in one transaction, then
// dispatched. Failures are logged, never returned: a lost event does not
// undo the check. Requests stored but not dispatched are found by the
// requeuer's reconciliation.
func DNSErrorWebhooks(st WebhookStore, q Dispatcher, log *slog.Logger) func(context.Context, *store.Domain, Result) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, d *store.Domain, _ Result) {
		hooks, err := st.Webhooks(ctx, d.ServerID)
		if err != nil {
			log.Error("loading webhooks failed; DomainDNSError dropped", "domain", d.Name, "err", err)
			return
		}
		var subscribed []*store.Webhook
		for _, h := range hooks {
			if webhook.Subscribed(h.Enabled, h.AllEvents, h.Events, webhook.EventDomainDNSError) {
				subscribed = append(subscribed, h)
			}
		}
		if len(subscribed) == 0 {
			return
		}
		srv, err := st.ServerByID(ctx, d.ServerID)
		if err != nil {
			log.Error("loading server failed; DomainDNSError dropped", "domain", d.Name, "err", err)
			return
		}
		body, err := json.Marshal(DNSErrorPayload(srv, d))
		if err != nil {
			log.Error("encoding DomainDNSError failed", "domain", d.Name, "err", err)
			return
		}
		reqs := make([]store.NewWebhookRequest, len(subscribed))
		for i, h := range subscribed {
			reqs[i] = store.NewWebhookRequest{ServerID: srv.ID, WebhookID: h.ID, URL: h.URL, Event: webhook.EventDomainDNSError, Payload: string(body)}
		}
		ids, err := st.InsertWebhookRequests(ctx, reqs)
		if err != nil {
			log.Error("storing DomainDNSError requests failed; event dropped", "domain", d.Name, "err", err)
			return
		}
		jobs := make([]queue.Job, len(ids))
		for i, id := range ids {
			jobs[i] = queue.Job{ID: id}
		}
		if err := q.Enqueue(ctx, queue.Webhooks, jobs...); err != nil {
			log.Warn("dispatching DomainDNSError requests failed; reconciliation will dispatch them", "domain", d.Name, "err", err)
		}
	}
}

// DNSErrorPayload is the DomainDNSError payload for domain d of server
// srv, from d's stored check.
func DNSErrorPayload(srv *store.Server, d *store.Domain) webhook.DomainDNSError {
	return webhook.DomainDNSError{
		Server: webhook.Server{UUID: srv.UUID, Name: srv.Name, Permalink: srv.Permalink, Organization: srv.OrganizationPermalink},
		Domain: d.Name, UUID: d.UUID, DNSCheckedAt: webhook.Seconds(d.DNSCheckedAt),
		SPFStatus: d.SPF.Status, SPFError: webhook.OptionalString(d.SPF.Error),
		DKIMStatus: d.DKIM.Status, DKIMError: webhook.OptionalString(d.DKIM.Error),
		MXStatus: d.MX.Status, MXError: webhook.OptionalString(d.MX.Error),
		ReturnPathStatus: d.ReturnPath.Status, ReturnPathError: webhook.OptionalString(d.ReturnPath.Error),
	}
}
