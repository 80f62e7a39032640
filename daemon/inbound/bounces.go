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
	OutgoingByMessageID(ctx context.Context, serverID int64, messageID string) ([]*store.Message, error)
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
	// SuppressHardBounces adds the recipient of a hard bounce to its
	// server's suppression list (worker.suppress_hard_bounces).
	SuppressHardBounces bool
	// SuppressFor is how long such an entry is kept
	// (postal.default_suppression_list_automatic_removal_days).
	SuppressFor time.Duration
}

// BounceHandler links bounces (messages the smtp-server received at a
// return-path address, Bounce=true) to the messages they report on. It is
// safe for concurrent use; Handler calls it for every bounce.
//
// The originals are found by the first of these that finds any, always
// restricted to the bounce's server: the X-Postal-MsgID of the returned
// headers (else anywhere in the bounce, as Postal scans for it); the
// message named by the return-path address's +tag (BounceForID, set at
// RCPT); the returned Message-ID matched to the server's outgoing messages,
// narrowed by the report's recipients when it names several. The report is
// read by dsn.Parse (RFC 3464 or a known plain-text format) and each
// original's recipient is classified hard or soft (dsn.Classify).
//
// A linked bounce is finished Processed, with effects that mark each
// original Bounced (a delivery row whose output is the class, status and
// remote diagnostic), emit MessageBounced {original_message, bounce}, and,
// for a hard bounce when SuppressHardBounces is set, suppress the
// original's recipient with the reason "hard bounce". It writes nothing
// itself: the worker commits the effects with the outcome.
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
	log := o.Log.With("component", "bounces")
	return &BounceHandler{o: o, log: log, events: outbound.NewEvents(o.Store, o.CacheTTL, log)}, nil
}

// Details texts of bounce processing (Postal's, but for the reason of a
// suppression).
const (
	detailsUnlinked   = "This message was a bounce but we couldn't link it with any outgoing message and there was no route for it."
	detailsSuppressed = " Recipient added to suppression list (hard bounce)."
	// SuppressionReason is the reason of a suppression added for a hard
	// bounce.
	SuppressionReason = "hard bounce"
)

// postalMsgIDRE finds X-Postal-MsgID fields anywhere in a message.
var postalMsgIDRE = regexp.MustCompile(`(?i)X-Postal-MsgID:[ \t]*([a-z0-9]+)`)

// maxScannedTokens bounds the X-Postal-MsgID fields looked up per bounce.
const maxScannedTokens = 16

// handleBounce finishes bounce m when it is linked to originals
// (Processed, with effects) or linking failed (an internal retry). It
// reports false for a bounce linked to nothing: the caller routes it
// through the server's __returnpath__ route, or finishes it unlinked.
func (h *BounceHandler) handleBounce(ctx context.Context, q *store.QueuedMessage, m *store.Message, raw []byte, now time.Time) (store.Outcome, bool) {
	originals, rep, how, err := h.originals(ctx, m, raw)
	if err != nil {
		h.log.Error("linking bounce failed; retrying it later", "err", err, "message_id", m.ID)
		return internalRetry(q, now, err), true
	}
	if len(originals) == 0 {
		return store.Outcome{}, false
	}
	var fx store.Effects
	linked := make([]string, 0, len(originals))
	for _, orig := range originals {
		details := fmt.Sprintf("We've received a bounce message for this e-mail. See <msg:%d> for details.", m.ID)
		class, output := classify(rep, orig.RcptTo)
		if class == dsn.Hard && h.o.SuppressHardBounces && orig.Scope == store.ScopeOutgoing && orig.RcptTo != "" {
			fx.Suppress = append(fx.Suppress, store.NewSuppression{ServerID: orig.ServerID, Address: orig.RcptTo,
				Reason: SuppressionReason, KeepUntil: now.Add(h.o.SuppressFor)})
			details += detailsSuppressed
		}
		fx.Links = append(fx.Links, store.BounceLink{OriginalID: orig.ID, BounceID: m.ID, Details: details, Output: output})
		linked = append(linked, fmt.Sprintf("<msg:%d>", orig.ID))
		fx.Webhooks = append(fx.Webhooks, h.events.Requests(ctx, now, outbound.Event{ServerID: m.ServerID, MessageID: orig.ID,
			Name: webhook.EventMessageBounced, Payload: webhook.Bounced{
				OriginalMessage: orig.WebhookPayload(), Bounce: m.WebhookPayload()}})...)
		h.log.Info("bounce linked", "message_id", m.ID, "original", orig.ID, "by", how, "class", string(class))
	}
	d := "This has been detected as a bounce message for " + strings.Join(linked, ", ") + "."
	return store.Processed(q, d).With(fx), true
}

// internalRetry retries q after an internal error, without touching the
// message.
func internalRetry(q *store.QueuedMessage, now time.Time, err error) store.Outcome {
	return store.Retry(q, now.Add(outbound.RetryDelay(q.Attempts)), "internal error: "+err.Error())
}

// originals finds the messages of the bounce's server that bounce reports
// on, and says how they were found.
func (h *BounceHandler) originals(ctx context.Context, bounce *store.Message, raw []byte) ([]*store.Message, *dsn.Report, string, error) {
	var rep *dsn.Report
	if raw != nil {
		if r, err := dsn.Parse(raw); err == nil {
			rep = r
		}
	}
	var out []*store.Message
	seen := map[int64]bool{}
	add := func(m *store.Message) {
		if m != nil && m.ServerID == bounce.ServerID && m.ID != bounce.ID && !m.Bounce && !seen[m.ID] {
			seen[m.ID] = true
			out = append(out, m)
		}
	}

	// 1. X-Postal-MsgID of the returned headers, else anywhere.
	var tokens []string
	if rep != nil && rep.PostalMessageID != "" {
		tokens = append(tokens, rep.PostalMessageID)
	} else if raw != nil {
		for _, mm := range postalMsgIDRE.FindAllSubmatch(raw, maxScannedTokens) {
			tokens = append(tokens, string(mm[1]))
		}
	}
	for _, t := range tokens {
		m, err := h.o.Store.MessageByToken(ctx, t)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, "", err
		}
		add(m)
	}
	if len(out) > 0 {
		return out, rep, "x-postal-msgid", nil
	}

	// 2. The return-path address's +<message token> (resolved at RCPT).
	if bounce.BounceForID != 0 {
		ms, err := h.o.Store.Messages(ctx, []int64{bounce.BounceForID})
		if err != nil {
			return nil, nil, "", err
		}
		for _, m := range ms {
			add(m)
		}
		if len(out) > 0 {
			return out, rep, "return-path", nil
		}
	}

	// 3. The returned Message-ID, narrowed by the reported recipients.
	if rep != nil && rep.OriginalMessageID != "" {
		ms, err := h.o.Store.OutgoingByMessageID(ctx, bounce.ServerID, rep.OriginalMessageID)
		if err != nil {
			return nil, nil, "", err
		}
		if len(ms) == 1 {
			add(ms[0])
		} else {
			for _, m := range ms {
				if _, ok := recipientFor(rep, m.RcptTo, false); ok {
					add(m)
				}
			}
		}
		if len(out) > 0 {
			return out, rep, "message-id", nil
		}
	}
	return nil, rep, "", nil
}

// recipientFor returns the report's recipient whose address is rcpt; with
// only, the report's one recipient when it names just one.
func recipientFor(rep *dsn.Report, rcpt string, only bool) (dsn.Recipient, bool) {
	if rep == nil {
		return dsn.Recipient{}, false
	}
	for _, r := range rep.Recipients {
		if strings.EqualFold(r.Address, rcpt) {
			return r, true
		}
	}
	if only && len(rep.Recipients) == 1 {
		return rep.Recipients[0], true
	}
	return dsn.Recipient{}, false
}

// classify returns the class of the bounce for rcpt and the original's
// delivery output: "<class> bounce: <status> <diagnostic>". A bounce
// without a report for rcpt is soft.
func classify(rep *dsn.Report, rcpt string) (dsn.Class, string) {
	r, ok := recipientFor(rep, rcpt, true)
	if !ok {
		return dsn.Soft, ""
	}
	class := dsn.Classify(r)
	out := string(class) + " bounce:"
	if r.Status != "" {
		out += " " + r.Status
	}
	if r.DiagnosticCode != "" {
		out += " " + r.DiagnosticCode
	}
	return class, out
}
