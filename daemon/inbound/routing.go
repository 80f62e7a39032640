package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/endpoint"
	"github.com/postalgo/postal/daemon/outbound"
	"github.com/postalgo/postal/daemon/smtpclient"
	"github.com/postalgo/postal/daemon/store"
)

// Store is what routing incoming mail needs of the database. Nothing is
// written through it: effects travel on the outcomes.
type Store interface {
	BounceStore
	ServerByID(ctx context.Context, id int64) (*store.Server, error)
	RouteByID(ctx context.Context, id int64) (*store.Route, error)
	HTTPEndpointByID(ctx context.Context, id int64) (*store.HTTPEndpoint, error)
	SMTPEndpointByID(ctx context.Context, id int64) (*store.SMTPEndpoint, error)
	AddressEndpointByID(ctx context.Context, id int64) (*store.AddressEndpoint, error)
	ReturnPathRoute(ctx context.Context, serverID int64) (*store.Route, error)
	AdditionalEndpoints(ctx context.Context, routeID int64) ([]*store.AdditionalEndpoint, error)
	// LoadUnloaded reads the rows of a batch claimed without their data.
	LoadUnloaded(ctx context.Context, batch []*store.QueuedMessage) (map[int64]*store.Loaded, error)
	Inspections(ctx context.Context, ids []int64) (map[int64]*store.Inspection, error)
}

// Forwarder relays a message unchanged to an SMTP endpoint (dest set) or
// to the mail servers of rcpt's domain (dest nil); *outbound.Processor is
// one.
type Forwarder interface {
	Forward(ctx context.Context, dest *smtpclient.Destination, from, rcpt string, raw []byte) outbound.Forwarded
}

// HTTPSender makes one attempt of a message to an HTTP endpoint
// (*endpoint.Client).
type HTTPSender interface {
	Deliver(ctx context.Context, ep endpoint.HTTP, m endpoint.Message) endpoint.Result
}

// Options configure a Handler.
type Options struct {
	// Store and HTTP are required.
	Store Store
	HTTP  HTTPSender
	// SMTP delivers to SMTP and address endpoints; without it such mail
	// waits (retried every Retry).
	SMTP Forwarder
	Log  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxAttempts is postal.default_maximum_delivery_attempts (default 18).
	MaxAttempts int
	// HoldExpiry is how long held mail is kept (default 7 days).
	HoldExpiry time.Duration
	// ReturnPathDomain is dns.return_path_domain, for bounce Message-IDs.
	ReturnPathDomain string
	// WebHostname names the postmaster of a server's bounces when the
	// route has no domain.
	WebHostname string
	// Retry is when mail for SMTP or address endpoints is looked at again
	// when there is no SMTP forwarder; default 1 h.
	Retry time.Duration
	// SuppressHardBounces suppresses the recipient of a hard bounce
	// (worker.suppress_hard_bounces); SuppressFor is how long
	// (postal.default_suppression_list_automatic_removal_days).
	SuppressHardBounces bool
	SuppressFor         time.Duration
	// Inspector scans mail for spam and viruses once, before routing; nil
	// (or one with no scanner) inspects nothing and adds no header.
	Inspector Inspector
	// AcceptUnscanned delivers mail a scanner could not check, marked
	// unchecked (inspection.when_unavailable: accept); by default such mail
	// is retried on the message schedule.
	AcceptUnscanned bool
	// InspectConcurrency is how many messages of a batch are inspected at
	// once; default 8.
	InspectConcurrency int
}

// Handler is the incoming stream's worker handler. It is safe for
// concurrent use. Bounces are linked to their originals (BounceHandler);
// a bounce linked to nothing goes to the server's __returnpath__ route, or
// is finished Processed when there is none; every other incoming message is processed in Postal's order: the maximum
// number of attempts, development mode (held unless released by hand), no
// route (HardFail), inspection (spam and viruses, once: a score at the
// server's failure threshold HardFails; a threat is Held; spam follows the
// route's spam mode), then the route's mode: Accept (Processed), Hold (Held),
// Bounce or Reject (HardFail with a bounce to the sender), Endpoint (one
// attempt at the route's endpoint, or at the additional endpoint the
// message was made for). The first try of a message for a route in mode
// Endpoint also makes one queued message per additional endpoint of the
// route, as an effect of its outcome. Each outcome carries its effects:
// bounce messages and the webhook events of its delivery (direction
// "incoming"); the handler writes nothing.
type Handler struct {
	o       Options
	log     *slog.Logger
	bounces *BounceHandler
	events  *outbound.Events
}

// New checks o and returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Store == nil || o.HTTP == nil {
		return nil, errors.New("inbound: the handler needs a Store and an HTTP sender")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 18
	}
	if o.HoldExpiry <= 0 {
		o.HoldExpiry = 7 * 24 * time.Hour
	}
	if o.Retry <= 0 {
		o.Retry = time.Hour
	}
	if o.InspectConcurrency <= 0 {
		o.InspectConcurrency = 8
	}
	if o.Inspector != nil && !o.Inspector.Spam() && !o.Inspector.Virus() {
		o.Inspector = nil // a nil *inspect.Inspector: no scanner
	}
	b, err := NewBounceHandler(BounceOptions{Store: o.Store, Log: o.Log, Now: o.Now,
		SuppressHardBounces: o.SuppressHardBounces, SuppressFor: o.SuppressFor})
	if err != nil {
		return nil, err
	}
	log := o.Log.With("component", "inbound")
	return &Handler{o: o, log: log, bounces: b, events: outbound.NewEvents(o.Store, 5*time.Second, log)}, nil
}

// Postal's details texts.
const (
	detailsDevelopment = "Server is in development mode."
	detailsNoRoute     = "Message does not have a route and/or endpoint available for delivery."
	detailsAccepted    = "Message has been accepted but not sent to any endpoints."
	detailsProcessed   = "Message has been processed."
	detailsBounced     = "Message has been bounced because the route asks for this."
)

// work is one message being routed.
type work struct {
	q          *store.QueuedMessage
	m          *store.Message
	raw        []byte
	server     *store.Server
	route      *store.Route
	manual     bool
	inspection *store.Inspection
	scanned    *scan
	verdict    *verdict
}

// delivered is the message an endpoint receives: the raw message with the
// inspection's headers before it.
func (w *work) delivered() []byte {
	if w.verdict == nil {
		return w.raw
	}
	h := w.verdict.headers(w.server.SpamThreshold)
	if len(h) == 0 {
		return w.raw
	}
	return append(h, w.raw...)
}

// endpoint is where w goes in mode Endpoint: the additional endpoint its
// message was created for, else the route's primary endpoint.
func (w *work) endpoint() (string, int64) {
	if w.m.EndpointType != "" {
		return w.m.EndpointType, w.m.EndpointID
	}
	return w.route.EndpointType, w.route.EndpointID
}

// Handle processes a batch of claimed incoming queued messages and returns
// one outcome per row, in order. A load failure retries the rows on the
// message schedule; nothing is dropped but rows whose message is gone.
func (h *Handler) Handle(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome {
	now := h.o.Now()
	outs := make([]store.Outcome, len(batch))
	if len(batch) == 0 {
		return outs
	}
	works, err := h.load(ctx, batch)
	if err != nil {
		h.log.Error("loading batch failed; retrying it later", "err", err)
		for i, q := range batch {
			outs[i] = internalRetry(q, now, err)
		}
		return outs
	}
	// Connection failures to an endpoint are reused for the rest of the
	// batch, as Postal does, rather than tried again at once.
	dead := map[int64]endpoint.Result{}
	extra := map[int64][]*store.AdditionalEndpoint{}
	// A scanner found down is not asked again for the rest of the batch.
	var down error
	h.prescan(ctx, works)
	for i, w := range works {
		if w == nil {
			outs[i] = store.Drop(batch[i])
			continue
		}
		if w.m.Bounce {
			if o, ok := h.bounces.handleBounce(ctx, w.q, w.m, w.raw, now); ok {
				outs[i] = o
				continue
			}
			if o, ok := h.unlinked(ctx, w, now); ok {
				outs[i] = o
				continue
			}
		}
		copies, err := h.copies(ctx, w, extra)
		if err != nil {
			h.log.Error("loading additional endpoints failed; retrying", "err", err, "message_id", w.m.ID)
			outs[i] = internalRetry(w.q, now, err)
			continue
		}
		outs[i] = h.route(ctx, w, dead, &down, now).With(store.Effects{Messages: copies})
		if w.verdict != nil && w.verdict.record != nil {
			outs[i] = outs[i].With(store.Effects{Inspection: w.verdict.record})
		}
	}
	return outs
}

// copies returns, on the first try of a message for a route in mode
// Endpoint, one new queued message per additional endpoint of the route
// (Postal creates them at acceptance: one message per endpoint), sharing
// its raw message. They commit with the first outcome of the message, which
// counts an attempt or finishes the row, so they are made once; a message
// released by hand, a copy, a message whose raw data is gone and later
// tries make none.
func (h *Handler) copies(ctx context.Context, w *work, extra map[int64][]*store.AdditionalEndpoint) ([]store.Submission, error) {
	r := w.route
	if r == nil || r.Mode != store.RouteModeEndpoint || w.m.EndpointType != "" || w.q.Attempts > 0 || w.manual ||
		w.raw == nil || w.m.RawMessageID == 0 {
		return nil, nil
	}
	eps, ok := extra[r.ID]
	if !ok {
		var err error
		if eps, err = h.o.Store.AdditionalEndpoints(ctx, r.ID); err != nil {
			return nil, err
		}
		extra[r.ID] = eps
	}
	if len(eps) == 0 {
		return nil, nil
	}
	m := w.m
	sub := store.Submission{Raw: w.raw, RawMessageID: m.RawMessageID}
	for _, ep := range eps {
		sub.Messages = append(sub.Messages, store.NewMessage{ServerID: m.ServerID, Scope: m.Scope, RcptTo: m.RcptTo,
			MailFrom: m.MailFrom, Subject: m.Subject, MessageID: m.MessageID, Tag: m.Tag, Bounce: m.Bounce,
			DomainID: m.DomainID, RouteID: r.ID, ReceivedWithSSL: m.ReceivedWithSSL, EndpointType: ep.Type,
			EndpointID: ep.EndpointID, Queue: true, QueueDomain: w.q.Domain})
	}
	return []store.Submission{sub}, nil
}

// unlinked decides for a bounce linked to nothing: it goes to the
// server's __returnpath__ route (the one it was accepted under, or the one
// the server has now, as the smtp-server would choose at RCPT) and is
// routed like any incoming mail (false); without one it is finished
// Processed with Postal's details, kept for the record.
func (h *Handler) unlinked(ctx context.Context, w *work, now time.Time) (store.Outcome, bool) {
	if w.route != nil {
		return store.Outcome{}, false
	}
	rt, err := h.o.Store.ReturnPathRoute(ctx, w.m.ServerID)
	switch {
	case err == nil:
		w.route = rt
		return store.Outcome{}, false
	case !errors.Is(err, store.ErrNotFound):
		return internalRetry(w.q, now, err), true
	}
	return store.Processed(w.q, detailsUnlinked), true
}

func (h *Handler) load(ctx context.Context, batch []*store.QueuedMessage) ([]*work, error) {
	// Rows claimed by store.ClaimQueued carry their message, body and manual
	// flag (Loaded); the others are read here.
	allIDs := make([]int64, 0, len(batch))
	for _, q := range batch {
		allIDs = append(allIDs, q.MessageID)
	}
	unloaded, err := h.o.Store.LoadUnloaded(ctx, batch)
	if err != nil {
		return nil, err
	}
	byID := map[int64]*store.Message{}
	raws := map[int64][]byte{}
	manual := map[int64]bool{}
	for _, q := range batch {
		l := q.Loaded
		if l == nil {
			l = unloaded[q.ID]
		}
		if l != nil && l.Message != nil {
			byID[l.Message.ID] = l.Message
			if l.Raw != nil {
				raws[l.Message.RawMessageID] = l.Raw
			}
			manual[q.ID] = l.Manual
		}
	}
	var inspections map[int64]*store.Inspection
	if h.o.Inspector != nil {
		if inspections, err = h.o.Store.Inspections(ctx, allIDs); err != nil {
			return nil, err
		}
	}
	servers := map[int64]*store.Server{}
	routes := map[int64]*store.Route{}
	works := make([]*work, len(batch))
	for i, q := range batch {
		m := byID[q.MessageID]
		if m == nil {
			continue
		}
		w := &work{q: q, m: m, raw: raws[m.RawMessageID], manual: manual[q.ID], inspection: inspections[m.ID]}
		srv, ok := servers[m.ServerID]
		if !ok {
			srv, err = h.o.Store.ServerByID(ctx, m.ServerID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			servers[m.ServerID] = srv
		}
		if srv == nil {
			continue // the server is gone, and its mail with it
		}
		w.server = srv
		if m.RouteID != 0 {
			r, ok := routes[m.RouteID]
			if !ok {
				r, err = h.o.Store.RouteByID(ctx, m.RouteID)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, err
				}
				routes[m.RouteID] = r
			}
			w.route = r
		}
		works[i] = w
	}
	return works, nil
}

// route decides one message's outcome in Postal's order.
func (h *Handler) route(ctx context.Context, w *work, dead map[int64]endpoint.Result, down *error, now time.Time) store.Outcome {
	q, r := w.q, w.route
	if q.Attempts >= h.o.MaxAttempts {
		d := fmt.Sprintf("Maximum number of delivery attempts (%d) has been reached.", q.Attempts)
		return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: d}), true, now)
	}
	v, err := h.inspect(ctx, w, down)
	if err != nil {
		if ctx.Err() != nil {
			return internalRetry(q, now, err) // shutting down: not the scanner's fault
		}
		d := "The message could not be inspected for spam and viruses (" + err.Error() + "); it will be tried again."
		return h.softFail(ctx, w, store.NewDelivery{Details: d}, now)
	}
	w.verdict = v
	if o, ok := h.inspected(ctx, w, v, now); ok {
		return o
	}
	switch {
	case w.server.Mode == store.ModeDevelopment && !w.manual:
		return h.finish(ctx, w, store.Hold(q, now.Add(h.o.HoldExpiry), detailsDevelopment), false, now)
	case r == nil:
		return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: detailsNoRoute}), false, now)
	}
	if o, ok := h.screened(ctx, w, v, now); ok {
		return o
	}
	switch r.Mode {
	case store.RouteModeAccept:
		return store.Processed(q, detailsAccepted)
	case store.RouteModeHold:
		if w.manual {
			return store.Processed(q, detailsProcessed)
		}
		return h.finish(ctx, w, store.Hold(q, now.Add(h.o.HoldExpiry), detailsAccepted), false, now)
	case store.RouteModeBounce, store.RouteModeReject:
		return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: detailsBounced}), true, now)
	}
	switch epType, _ := w.endpoint(); epType {
	case store.EndpointHTTP:
		return h.deliverHTTP(ctx, w, dead, now)
	case store.EndpointSMTP, store.EndpointAddress:
		if h.o.SMTP == nil {
			return store.Retry(q, now.Add(h.o.Retry), "waiting: this process has no SMTP forwarder for "+epType)
		}
		return h.deliverSMTP(ctx, w, now)
	}
	return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: detailsNoRoute}), false, now)
}

// deliverSMTP relays the raw message to the route's SMTP endpoint (its
// host, port and TLS mode) or address endpoint (by MX), with the envelope
// sender <server token>@<return path domain>.
func (h *Handler) deliverSMTP(ctx context.Context, w *work, now time.Time) store.Outcome {
	q := w.q
	if w.raw == nil {
		return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: "Raw message has been removed. Cannot send message."}), false, now)
	}
	from := w.server.Token + "@" + h.o.ReturnPathDomain
	var dest *smtpclient.Destination
	rcpt := w.m.RcptTo
	epType, epID := w.endpoint()
	if epType == store.EndpointSMTP {
		ep, err := h.o.Store.SMTPEndpointByID(ctx, epID)
		if errors.Is(err, store.ErrNotFound) {
			return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: detailsNoRoute}), false, now)
		}
		if err != nil {
			return internalRetry(q, now, err)
		}
		mode, err := smtpclient.ParseSSLMode(ep.SSLMode)
		if err != nil {
			return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: "SMTP endpoint: " + err.Error()}), true, now)
		}
		port := ep.Port
		if port == 0 {
			port = 25
		}
		dest = &smtpclient.Destination{Host: ep.Hostname, Port: port, SSLMode: mode}
	} else {
		ep, err := h.o.Store.AddressEndpointByID(ctx, epID)
		if errors.Is(err, store.ErrNotFound) {
			return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: detailsNoRoute}), false, now)
		}
		if err != nil {
			return internalRetry(q, now, err)
		}
		rcpt = ep.Address
	}
	f := h.o.SMTP.Forward(ctx, dest, from, rcpt, w.delivered())
	switch {
	case f.Sent:
		return h.finish(ctx, w, store.Sent(q, f.Delivery), false, now).With(used(epType, epID))
	case f.Permanent:
		return h.finish(ctx, w, store.HardFail(q, f.Delivery), true, now)
	}
	return h.softFail(ctx, w, f.Delivery, now)
}

// softFail retries q on the message schedule, or hard-fails it (with a
// bounce) when this was the last allowed attempt.
func (h *Handler) softFail(ctx context.Context, w *work, d store.NewDelivery, now time.Time) store.Outcome {
	q := w.q
	if q.Attempts+1 >= h.o.MaxAttempts {
		d.Details = strings.TrimSuffix(d.Details, ".") +
			fmt.Sprintf(". Maximum number of delivery attempts (%d) has been reached.", q.Attempts+1)
		return h.finish(ctx, w, store.HardFail(q, d), true, now)
	}
	return h.finish(ctx, w, store.SoftFail(q, now.Add(outbound.RetryDelay(q.Attempts)), d), false, now)
}

// deliverHTTP makes one attempt at the route's HTTP endpoint and maps the
// result as Postal does.
func (h *Handler) deliverHTTP(ctx context.Context, w *work, dead map[int64]endpoint.Result, now time.Time) store.Outcome {
	q := w.q
	_, epID := w.endpoint()
	ep, err := h.o.Store.HTTPEndpointByID(ctx, epID)
	if errors.Is(err, store.ErrNotFound) {
		return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: detailsNoRoute}), false, now)
	}
	if err != nil {
		return internalRetry(q, now, err)
	}
	if w.raw == nil {
		return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: "Raw message has been removed. Cannot send message."}), false, now)
	}
	res, reused := dead[ep.ID]
	if !reused {
		res = h.o.HTTP.Deliver(ctx, endpoint.HTTP{URL: ep.URL, Encoding: ep.Encoding, Format: ep.Format,
			StripReplies: ep.StripReplies, IncludeAttachments: ep.IncludeAttachments,
			Timeout: time.Duration(ep.Timeout) * time.Second}, endpoint.Message{ID: w.m.ID, RcptTo: w.m.RcptTo,
			MailFrom: w.m.MailFrom, Token: w.m.Token, Timestamp: w.m.Timestamp, Bounce: w.m.Bounce,
			ReceivedWithSSL: w.m.ReceivedWithSSL, SpamStatus: w.verdict.spamStatus(), Raw: w.delivered()})
		if res.Code < 0 {
			dead[ep.ID] = res
		}
	}
	d := store.NewDelivery{Details: res.Details, Output: res.Output, SentWithSSL: res.SSL, LogID: res.LogID,
		Time: float64(res.Duration.Milliseconds()/10) / 100}
	h.log.Debug("http endpoint attempt", "message_id", w.m.ID, "code", res.Code, "reused", reused)
	switch res.Verdict {
	case endpoint.Sent:
		return h.finish(ctx, w, store.Sent(q, d), false, now).With(used(store.EndpointHTTP, ep.ID))
	case endpoint.Retry:
		return h.softFail(ctx, w, d, now)
	case endpoint.FailNoBounce:
		return h.finish(ctx, w, store.HardFail(q, d), false, now)
	}
	return h.finish(ctx, w, store.HardFail(q, d), true, now)
}

// used is the effect that marks an endpoint used (its last_used_at), as
// Postal does on a successful delivery.
func used(kind string, id int64) store.Effects {
	return store.Effects{Used: []store.EndpointRef{{Type: kind, ID: id}}}
}

// finish adds o's effects: a bounce to the sender when asked for and
// allowed (not for a bounce, nor without a MAIL FROM), and the webhook
// event of its delivery.
func (h *Handler) finish(ctx context.Context, w *work, o store.Outcome, bounce bool, now time.Time) store.Outcome {
	var fx store.Effects
	if bounce && !w.m.Bounce && w.m.MailFrom != "" {
		reason := o.Details()
		if d := o.Delivery(); d != nil {
			reason = d.Details
		}
		if sub, ok := h.bounceMessage(w, reason, now); ok {
			fx.Bounces = append(fx.Bounces, sub)
		}
	}
	if d := o.Delivery(); d != nil {
		if name := outbound.DeliveryEvent(d.Status); name != "" {
			p := outbound.DeliveryPayload(w.m, d, now)
			if w.verdict != nil {
				p.Message.SpamStatus = w.verdict.spamStatus()
			}
			fx.Webhooks = h.events.Requests(ctx, now, outbound.Event{ServerID: w.m.ServerID, MessageID: w.m.ID, Name: name, Payload: p})
		}
	}
	return o.With(fx)
}
