package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/dsn"
	"github.com/postalgo/postal/daemon/outbound"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/webhook"
)

// BounceStore is what bounce processing needs of the database.
type BounceStore interface {
	Messages(ctx context.Context, ids []int64) ([]*store.Message, error)
	RawMessages(ctx context.Context, ids []int64) (map[int64][]byte, error)
	MessageByToken(ctx context.Context, token string) (*store.Message, error)
	outbound.WebhookStore
}

// BounceOptions configure a BounceHandler.
type BounceOptions struct {
	// Store is required.
	Store BounceStore
	Log   *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// CacheTTL bounds the age of cached webhook rows; default 5 s.
	CacheTTL time.Duration
	// InboundRetry is when an incoming message that is not a bounce is
	// looked at again; default 1 h.
	InboundRetry time.Duration
}

// BounceHandler is the incoming stream's Handler for bounces: messages the
// smtp-server received at a return-path address (Bounce=true). It is safe for
// concurrent use.
//
// For each bounce it finds the messages it reports on (BounceForID, else the
// X-Postal-MsgID of the returned headers as dsn.Parse reads them, else any
// X-Postal-MsgID in the body, as Postal scans for), restricted to the same
// server; and finishes the bounce with status Processed, with effects that
// mark each original Bounced (a delivery row whose output is the remote
// diagnostic) and emit MessageBounced {original_message, bounce}. It writes
// nothing itself: the worker commits the effects with the outcome. A bounce linked to nothing and
// with no route hard-fails with Postal's details.
//
// Incoming messages that are not bounces (and unlinked bounces that have a
// route) are left untouched for inbound routing, a later feature: their
// outcome is a retry after InboundRetry with the details "waiting for inbound
// routing" and no status change.
type BounceHandler struct {
	o      BounceOptions
	log    *slog.Logger
	events *outbound.Events
}

// NewBounceHandler checks o and returns a BounceHandler.
func NewBounceHandler(o BounceOptions) (*BounceHandler, error) {
	if o.Store == nil {
		return nil, errors.New("inbound: bounce handler needs a Store")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = 5 * time.Second
	}
	if o.InboundRetry == 0 {
		o.InboundRetry = time.Hour
	}
	log := o.Log.With("component", "bounces")
	return &BounceHandler{o: o, log: log, events: outbound.NewEvents(o.Store, o.CacheTTL, log)}, nil
}

// postalMsgIDRE finds X-Postal-MsgID fields anywhere in a message.
var postalMsgIDRE = regexp.MustCompile(`(?i)X-Postal-MsgID:\s*([a-z0-9]+)`)

// Handle processes a batch of claimed incoming queued messages and returns
// one outcome per row, in order.
func (h *BounceHandler) Handle(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome {
	now := h.o.Now()
	outs := make([]store.Outcome, len(batch))
	ids := make([]int64, len(batch))
	for i, q := range batch {
		outs[i] = store.Drop(q)
		ids[i] = q.MessageID
	}
	if len(batch) == 0 {
		return outs
	}
	msgs, err := h.o.Store.Messages(ctx, ids)
	var raws map[int64][]byte
	if err == nil {
		rawIDs := make([]int64, 0, len(msgs))
		for _, m := range msgs {
			if m.Bounce && m.RawMessageID != 0 {
				rawIDs = append(rawIDs, m.RawMessageID)
			}
		}
		raws, err = h.o.Store.RawMessages(ctx, rawIDs)
	}
	if err != nil {
		h.log.Error("loading batch failed; retrying it later", "err", err)
		for i, q := range batch {
			outs[i] = internalRetry(q, now, err)
		}
		return outs
	}
	byID := make(map[int64]*store.Message, len(msgs))
	for _, m := range msgs {
		byID[m.ID] = m
	}
	for i, q := range batch {
		m := byID[q.MessageID]
		if m == nil {
			continue // message deleted: drop the row
		}
		if m.Scope != store.ScopeIncoming || !m.Bounce {
			outs[i] = h.waitForRouting(q, now)
			continue
		}
		if o, ok := h.handleBounce(ctx, q, m, raws[m.RawMessageID], now); ok {
			outs[i] = o
		} else {
			outs[i] = h.waitForRouting(q, now)
		}
	}
	return outs
}

// handleBounce finishes bounce m: linked to originals (Processed, effects
// marking them Bounced), an internal error (retried), or unlinked without a
// route (HardFail). It reports false for an unlinked bounce that has a
// route: that one is routed like any incoming message.
func (h *BounceHandler) handleBounce(ctx context.Context, q *store.QueuedMessage, m *store.Message, raw []byte, now time.Time) (store.Outcome, bool) {
	originals, rep, err := h.originals(ctx, m, raw)
	if err != nil {
		h.log.Error("linking bounce failed; retrying it later", "err", err, "message_id", m.ID)
		return internalRetry(q, now, err), true
	}
	if len(originals) == 0 {
		if m.RouteID != 0 {
			return store.Outcome{}, false
		}
		d := "This message was a bounce but we couldn't link it with any outgoing message and there was no route for it."
		return store.HardFail(q, store.NewDelivery{Details: d}), true
	}
	var fx store.Effects
	var linked []string
	for _, orig := range originals {
		details := fmt.Sprintf("We've received a bounce message for this e-mail. See <msg:%d> for details.", m.ID)
		fx.Links = append(fx.Links, store.BounceLink{OriginalID: orig.ID, BounceID: m.ID, Details: details,
			Output: diagnostic(rep, orig.RcptTo)})
		linked = append(linked, fmt.Sprintf("<msg:%d>", orig.ID))
		fx.Webhooks = append(fx.Webhooks, h.events.Requests(ctx, now, outbound.Event{ServerID: m.ServerID, MessageID: orig.ID,
			Name: webhook.EventMessageBounced, Payload: webhook.Bounced{
				OriginalMessage: orig.WebhookPayload(), Bounce: m.WebhookPayload()}})...)
	}
	d := "This has been detected as a bounce message for " + strings.Join(linked, ", ") + "."
	return store.Processed(q, d).With(fx), true
}

// internalRetry retries q after an internal error, without touching the
// message.
func internalRetry(q *store.QueuedMessage, now time.Time, err error) store.Outcome {
	return store.Retry(q, now.Add(outbound.RetryDelay(q.Attempts)), "internal error: "+err.Error())
}

func (h *BounceHandler) waitForRouting(q *store.QueuedMessage, now time.Time) store.Outcome {
	return store.Retry(q, now.Add(h.o.InboundRetry), "waiting for inbound routing")
}

// originals finds the messages of the bounce's server that bounce reports on.
func (h *BounceHandler) originals(ctx context.Context, bounce *store.Message, raw []byte) ([]*store.Message, *dsn.Report, error) {
	var rep *dsn.Report
	if raw != nil {
		if r, err := dsn.Parse(raw); err == nil {
			rep = r
		}
	}
	var out []*store.Message
	seen := map[int64]bool{}
	add := func(m *store.Message) {
		if m != nil && m.ServerID == bounce.ServerID && m.ID != bounce.ID && !seen[m.ID] {
			seen[m.ID] = true
			out = append(out, m)
		}
	}
	if bounce.BounceForID != 0 {
		ms, err := h.o.Store.Messages(ctx, []int64{bounce.BounceForID})
		if err != nil {
			return nil, nil, err
		}
		for _, m := range ms {
			add(m)
		}
		if len(out) > 0 {
			return out, rep, nil
		}
	}
	var tokens []string
	if rep != nil && rep.PostalMessageID != "" {
		tokens = append(tokens, rep.PostalMessageID)
	} else if raw != nil {
		for _, mm := range postalMsgIDRE.FindAllSubmatch(raw, 16) {
			tokens = append(tokens, string(mm[1]))
		}
	}
	for _, t := range tokens {
		m, err := h.o.Store.MessageByToken(ctx, t)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		add(m)
	}
	return out, rep, nil
}

// diagnostic returns the report's diagnostic for rcpt (or its first
// recipient's), with the status, for the original's delivery output.
func diagnostic(rep *dsn.Report, rcpt string) string {
	if rep == nil || len(rep.Recipients) == 0 {
		return ""
	}
	r := rep.Recipients[0]
	for _, x := range rep.Recipients {
		if strings.EqualFold(x.Address, rcpt) {
			r = x
			break
		}
	}
	out := r.Status
	if r.DiagnosticCode != "" {
		out += " " + r.DiagnosticCode
	}
	return strings.TrimSpace(out)
}
