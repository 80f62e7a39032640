package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/forwarded"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/webhook"
)

// HitStore is what Handler needs of package store.
type HitStore interface {
	RecordLoad(ctx context.Context, serverToken, messageToken string, hit store.TrackingHit, events store.TrackingEvents) (*store.TrackingResult, error)
	RecordClick(ctx context.Context, serverToken, linkToken string, hit store.TrackingHit, events store.TrackingEvents) (*store.TrackingResult, error)
}

// Enqueuer dispatches webhook requests (package queue).
type Enqueuer interface {
	Enqueue(ctx context.Context, kind queue.Kind, jobs ...queue.Job) error
}

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	Store HitStore
	// Webhooks receives the ids of new webhook requests after their
	// commit; nil leaves them to the requeuer's reconciliation.
	Webhooks Enqueuer
	// TrustedProxies may set X-Forwarded-For (postal.trusted_proxies).
	TrustedProxies []netip.Prefix
	Log            *slog.Logger
	Now            func() time.Time
}

// Handler serves tracking requests and hands every other request to the
// next handler.
type Handler struct {
	o HandlerOptions
}

// NewHandler returns a Handler.
func NewHandler(o HandlerOptions) *Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Handler{o: o}
}

// Wrap returns a handler that serves tracking requests (header
// X-Postal-Track-Host with the integer value 1) and passes the rest to next.
func (h *Handler) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, err := strconv.Atoi(strings.TrimSpace(r.Header.Get("X-Postal-Track-Host"))); err != nil || v != 1 {
			next.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ServeHTTP serves one tracking request: /img/<server token>/<message
// token> (the pixel), /<server token>/<link token> (a 307 to the link's
// stored URL), anything else 200 "Hello.".
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(segs) >= 3 && segs[0] == "img" && validToken(segs[1]) && validToken(segs[2]):
		h.load(w, r, segs[1], segs[2])
	case len(segs) >= 2 && validToken(segs[0]) && validToken(segs[1]):
		h.click(w, r, segs[0], segs[1])
	default:
		text(w, http.StatusOK, "Hello.")
	}
}

// validToken matches Postal's [a-z0-9-]+ (case-insensitive), capped.
func validToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

func (h *Handler) hit(r *http.Request) store.TrackingHit {
	ip := ""
	if a := h.clientIP(r); a.IsValid() {
		ip = a.String()
	}
	return store.TrackingHit{IP: ip, UserAgent: r.UserAgent(), At: h.o.Now()}
}

func (h *Handler) load(w http.ResponseWriter, r *http.Request, serverToken, messageToken string) {
	res, err := h.o.Store.RecordLoad(r.Context(), strings.ToLower(serverToken), messageToken, h.hit(r), h.events)
	switch {
	case errors.Is(err, store.ErrUnknownServer):
		text(w, http.StatusNotFound, "Invalid Server Token")
		return
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		// As Postal: the pixel is served whatever happened to the record.
		h.o.Log.Error("recording a load failed", "err", err)
	default:
		h.dispatch(r.Context(), res.WebhookIDs)
	}
	if r.URL.Query().Has("src") {
		text(w, http.StatusBadRequest, "Invalid/missing source image")
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(len(pixelPNG)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(pixelPNG)
}

func (h *Handler) click(w http.ResponseWriter, r *http.Request, serverToken, linkToken string) {
	res, err := h.o.Store.RecordClick(r.Context(), strings.ToLower(serverToken), linkToken, h.hit(r), h.events)
	switch {
	case errors.Is(err, store.ErrUnknownServer):
		text(w, http.StatusNotFound, "Invalid Server Token")
		return
	case errors.Is(err, store.ErrNotFound):
		text(w, http.StatusNotFound, "Link not found")
		return
	case err != nil:
		h.o.Log.Error("recording a click failed", "err", err)
		text(w, http.StatusServiceUnavailable, "Temporarily unavailable")
		return
	}
	h.dispatch(r.Context(), res.WebhookIDs)
	u := res.Link.URL
	// Stored links are http(s) URLs the rewriter matched; refuse anything
	// else rather than redirect to it.
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		text(w, http.StatusNotFound, "Link not found")
		return
	}
	w.Header().Set("Location", u)
	text(w, http.StatusTemporaryRedirect, "Redirected to: "+u)
}

func (h *Handler) dispatch(ctx context.Context, ids []int64) {
	if len(ids) == 0 || h.o.Webhooks == nil {
		return
	}
	jobs := make([]queue.Job, len(ids))
	for i, id := range ids {
		jobs[i] = queue.Job{ID: id}
	}
	if err := h.o.Webhooks.Enqueue(ctx, queue.Webhooks, jobs...); err != nil {
		h.o.Log.Warn("dispatching webhook requests failed; reconciliation will dispatch them", "err", err, "count", len(jobs))
	}
}

// events builds the webhook requests of a hit for the subscribed, enabled
// webhooks; it runs inside the recording transaction.
func (h *Handler) events(ev store.TrackingEvent) []store.NewWebhookRequest {
	name := webhook.EventMessageLoaded
	var payload any = webhook.Loaded{Message: ev.Message.WebhookPayload(), IPAddress: ev.Hit.IP, UserAgent: ev.Hit.UserAgent}
	if ev.Link != nil {
		name = webhook.EventMessageLinkClicked
		payload = webhook.LinkClicked{Message: ev.Message.WebhookPayload(), URL: ev.Link.URL, Token: ev.Link.Token,
			IPAddress: ev.Hit.IP, UserAgent: ev.Hit.UserAgent}
	}
	var out []store.NewWebhookRequest
	var body []byte
	for _, wh := range ev.Webhooks {
		if !webhook.Subscribed(wh.Enabled, wh.AllEvents, wh.Events, name) {
			continue
		}
		if body == nil {
			var err error
			if body, err = json.Marshal(payload); err != nil {
				h.o.Log.Error("encoding webhook payload failed", "err", err, "event", name)
				return nil
			}
		}
		out = append(out, store.NewWebhookRequest{ServerID: ev.Message.ServerID, WebhookID: wh.ID, MessageID: ev.Message.ID,
			URL: wh.URL, Event: name, Payload: string(body)})
	}
	return out
}

// clientIP is the request's client behind postal.trusted_proxies.
func (h *Handler) clientIP(r *http.Request) netip.Addr {
	return forwarded.ClientIP(r, h.o.TrustedProxies)
}
