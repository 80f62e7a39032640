// Package tracker connects the tracking rewriter (package tracking) to the
// store and the web: Tracker rewrites outgoing messages before they are
// signed (it is outbound's Tracker), Handler serves the open pixel and
// tracked links (the web server mounts it in front of its routes).
//
// Retries: links are stored once per message and URL (store.EnsureLinks is
// idempotent) and the rewrite is a pure function of the message, the track
// domain's settings and those links, so a retry, or a second worker after a
// crash, sends the same bytes as the first attempt without storing a copy
// of the rewritten message. messages.parsed and tracked_links/_images record
// that the message was rewritten (Postal's parsed flag).
//
// Handler answers only requests carrying "X-Postal-Track-Host: 1" (set by
// the operator's reverse proxy for track hosts); it redirects only to URLs
// stored as links of the message, never to one taken from the request.
package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/tracking"
)

// Store is what Tracker needs of package store.
type Store interface {
	ActiveTrackDomain(ctx context.Context, serverID, domainID int64) (*store.TrackDomain, error)
	ServerByID(ctx context.Context, id int64) (*store.Server, error)
	EnsureLinks(ctx context.Context, messageID int64, urls []string) (map[string]string, error)
	MarkTracked(ctx context.Context, id int64, links, images int) error
}

// Tracker rewrites outgoing messages for open and click tracking.
type Tracker struct {
	st  Store
	log *slog.Logger
}

// NewTracker returns a Tracker over st.
func NewTracker(st Store, log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{st: st, log: log}
}

// Track returns raw rewritten for tracking when msg is an outgoing,
// non-bounce message whose From domain has an active track domain (DNS OK
// or marked verified) and whose header does not say "X-AMP: skip"; X-AMP
// fields are removed in every case. It stores the message's links before
// returning, so they exist before the mail is sent. An error (the store
// unavailable) soft-fails the message: it is retried, never sent
// untracked by accident.
func (t *Tracker) Track(ctx context.Context, msg *store.Message, raw []byte) ([]byte, error) {
	skip := tracking.SkipRequested(raw)
	raw = tracking.StripSkip(raw)
	if skip || msg.Scope != store.ScopeOutgoing || msg.Bounce || msg.DomainID == 0 {
		return raw, nil
	}
	td, err := t.st.ActiveTrackDomain(ctx, msg.ServerID, msg.DomainID)
	if errors.Is(err, store.ErrNotFound) {
		return raw, nil
	}
	if err != nil {
		return nil, fmt.Errorf("track domain: %w", err)
	}
	if !td.TrackClicks && !td.TrackLoads {
		return raw, nil
	}
	srv, err := t.st.ServerByID(ctx, msg.ServerID)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	o := tracking.Options{
		Scheme: "http", Host: td.FullName(), ServerToken: srv.Token, MessageToken: msg.Token,
		TrackClicks: td.TrackClicks, TrackLoads: td.TrackLoads, Excluded: td.ExcludedClickDomains,
	}
	if td.SSLEnabled {
		o.Scheme = "https"
	}
	tokens, err := t.st.EnsureLinks(ctx, msg.ID, tracking.URLs(raw, o))
	if err != nil {
		return nil, err
	}
	out, res := tracking.Rewrite(raw, o, tokens)
	if err := t.st.MarkTracked(ctx, msg.ID, res.Links, res.Images); err != nil {
		return nil, err
	}
	t.log.Debug("message tracked", "message_id", msg.ID, "server", msg.ServerID, "links", res.Links, "images", res.Images)
	return out, nil
}
