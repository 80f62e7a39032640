package store

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Tracking caps: what is stored of a tracking request's foreign text.
const (
	maxUserAgent = 512
	maxIP        = 64
	maxLinkURL   = 8192
)

// ActiveTrackDomain returns the track domain that tracks messages of server
// serverID sent from domain domainID: one whose DNS check is OK or that the
// operator marked verified. None wraps ErrNotFound.
func (s *Store) ActiveTrackDomain(ctx context.Context, serverID, domainID int64) (*TrackDomain, error) {
	list, err := s.trackDomains(ctx, `t.server_id = ? AND t.domain_id = ? AND (t.dns_status = 'OK' OR t.verified) ORDER BY t.id LIMIT 1`,
		serverID, domainID)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("active track domain of domain %d: %w", domainID, ErrNotFound)
	}
	return list[0], nil
}

// SetTrackDomainVerified marks track domain uuid of server serverID as
// verified (tracking on whatever its DNS check says) or not. Unknown wraps
// ErrNotFound.
func (s *Store) SetTrackDomainVerified(ctx context.Context, serverID int64, uuid string, verified bool) error {
	res, err := s.exec(ctx, `UPDATE track_domains SET verified = ?, updated_at = ? WHERE uuid = ? AND server_id = ?`,
		verified, s.now().UnixMicro(), uuid, serverID)
	if err != nil {
		return fmt.Errorf("set track domain %s verified: %w", uuid, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("track domain %s: %w", uuid, ErrNotFound)
	}
	return nil
}

// linkTokenAlphabet is what link tokens are made of (16 alphanumerics).
const linkTokenAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func newLinkToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = linkTokenAlphabet[int(b[i])%len(linkTokenAlphabet)]
	}
	return string(b)
}

func urlHash(u string) string {
	h := sha1.Sum([]byte(u))
	return hex.EncodeToString(h[:])
}

// LinkRequest asks for the links of one message: its URLs and the counts
// recorded with its parsed flag.
type LinkRequest struct {
	MessageID     int64
	URLs          []string
	Links, Images int
}

// EnsureLinks returns the link token of each URL of message messageID
// (URL -> token), creating those that do not exist yet, and records that
// the message was tracked (parsed, with links and images as its counts),
// all in one transaction. It is idempotent: a retry, or two workers racing,
// get the same token for the same message and URL; when the message is
// already marked and every URL has its link (a retry) nothing is written.
// URLs longer than 8192 bytes are left out of the result.
func (s *Store) EnsureLinks(ctx context.Context, messageID int64, urls []string, links, images int) (map[string]string, error) {
	have, done, err := s.ExistingLinks(ctx, messageID, urls)
	if err != nil || done {
		return have, err
	}
	out, err := s.EnsureLinksBatch(ctx, []LinkRequest{{MessageID: messageID, URLs: urls, Links: links, Images: images}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ExistingLinks returns a message's links (URL -> token) and whether it is
// already marked tracked with a link for every URL of urls (then nothing
// needs writing). An unknown message wraps ErrNotFound.
func (s *Store) ExistingLinks(ctx context.Context, messageID int64, urls []string) (map[string]string, bool, error) {
	have, parsed, err := s.links(ctx, s.db, messageID)
	if err != nil {
		return nil, false, fmt.Errorf("links of message %d: %w", messageID, err)
	}
	if !parsed {
		return have, false, nil
	}
	for _, u := range urls {
		if _, ok := have[u]; !ok && len(u) <= maxLinkURL {
			return have, false, nil
		}
	}
	return have, true, nil
}

// EnsureLinksBatch does what EnsureLinks does for several messages in one
// transaction (one commit for a batch of concurrent senders), returning
// each request's URL -> token map in order. On error nothing was stored.
func (s *Store) EnsureLinksBatch(ctx context.Context, reqs []LinkRequest) ([]map[string]string, error) {
	now := s.now().UnixMicro()
	out := make([]map[string]string, len(reqs))
	err := s.inTx(ctx, func(t tx) error {
		stmt, err := t.prepare(ctx, `INSERT INTO links (message_id, token, hash, url, timestamp)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id, hash) DO NOTHING`)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		defer stmt.Close()
		for _, r := range reqs {
			for _, u := range r.URLs {
				if len(u) > maxLinkURL {
					continue
				}
				if _, err := stmt.ExecContext(ctx, r.MessageID, newLinkToken(), urlHash(u), truncate(u, maxLinkURL), now); err != nil {
					return fmt.Errorf("insert link: %w", err)
				}
			}
			if _, err := t.exec(ctx, `UPDATE messages SET parsed = TRUE, tracked_links = ?, tracked_images = ? WHERE id = ?`,
				r.Links, r.Images, r.MessageID); err != nil {
				return fmt.Errorf("mark tracked: %w", err)
			}
		}
		for i, r := range reqs {
			if out[i], _, err = s.links(ctx, t.Tx, r.MessageID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("links of %d messages: %w", len(reqs), err)
	}
	return out, nil
}

// links reads a message's links (URL -> token) and its parsed flag.
func (s *Store) links(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, messageID int64) (map[string]string, bool, error) {
	var parsed bool
	if err := q.QueryRowContext(ctx, s.dialect.rebind(`SELECT parsed FROM messages WHERE id = ?`), messageID).Scan(&parsed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, false, fmt.Errorf("message %d: %w", messageID, ErrNotFound)
		}
		return nil, false, err
	}
	rows, err := q.QueryContext(ctx, s.dialect.rebind(`SELECT url, token FROM links WHERE message_id = ?`), messageID)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var u, tok string
		if err := rows.Scan(&u, &tok); err != nil {
			return nil, false, err
		}
		out[u] = tok
	}
	return out, parsed, rows.Err()
}

// Link is a tracked link of a message.
type Link struct {
	ID        int64     `json:"id"`
	MessageID int64     `json:"message_id"`
	Token     string    `json:"token"`
	URL       string    `json:"url"`
	Timestamp time.Time `json:"timestamp"`
}

// TrackingHit is one tracking request: who fetched the pixel or a link.
type TrackingHit struct {
	IP        string
	UserAgent string
	At        time.Time
}

// TrackingEvent is handed to a TrackingEvents function inside the
// recording transaction: the message (and link, for clicks) hit.
type TrackingEvent struct {
	Message *Message
	Link    *Link // nil for a load
	Hit     TrackingHit
	// Webhooks are the server's enabled webhooks (with their events).
	Webhooks []*Webhook
}

// TrackingEvents turns a hit into the webhook requests to store with it.
type TrackingEvents func(TrackingEvent) []NewWebhookRequest

// TrackingResult says what a recorded hit found and the ids of the webhook
// requests stored with it (to enqueue after the commit).
type TrackingResult struct {
	// Link is the link clicked (nil for loads or when not found).
	Link       *Link
	WebhookIDs []int64
}

// ErrUnknownServer is returned (wrapped, with ErrNotFound) for a tracking
// request naming no server.
var ErrUnknownServer = errors.New("invalid server token")

// RecordLoad records a load of the message with token messageToken on the
// server with token serverToken: messages.loaded set on the first load, a
// loads row, and the webhook requests events returns, in one transaction.
// An unknown server wraps ErrUnknownServer; an unknown message wraps
// ErrNotFound.
func (s *Store) RecordLoad(ctx context.Context, serverToken, messageToken string, hit TrackingHit, events TrackingEvents) (*TrackingResult, error) {
	return s.recordHit(ctx, serverToken, messageToken, "", hit, events)
}

// RecordClick records a click on the link with token linkToken of a
// message of the server with token serverToken: messages.clicked set to the
// hit's time, a clicks row, and the webhook requests events returns, in one
// transaction. The result's Link holds the stored URL. Unknown server wraps
// ErrUnknownServer; unknown link wraps ErrNotFound.
func (s *Store) RecordClick(ctx context.Context, serverToken, linkToken string, hit TrackingHit, events TrackingEvents) (*TrackingResult, error) {
	return s.recordHit(ctx, serverToken, "", linkToken, hit, events)
}

func (s *Store) recordHit(ctx context.Context, serverToken, messageToken, linkToken string, hit TrackingHit, events TrackingEvents) (*TrackingResult, error) {
	srv, err := s.ServerByToken(ctx, serverToken)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", ErrUnknownServer, err)
		}
		return nil, err
	}
	ip, ua := truncate(hit.IP, maxIP), truncate(hit.UserAgent, maxUserAgent)
	hit.IP, hit.UserAgent = ip, ua
	at := hit.At.UnixMicro()
	var hooks []*Webhook
	if events != nil {
		if hooks, err = s.Webhooks(ctx, srv.ID); err != nil {
			return nil, err
		}
	}
	res := &TrackingResult{}
	err = s.inTx(ctx, func(t tx) error {
		var m *Message
		if linkToken != "" {
			var l Link
			var ts int64
			err := t.queryRow(ctx, `SELECT l.id, l.message_id, l.token, l.url, l.timestamp FROM links l
				JOIN messages m ON m.id = l.message_id WHERE l.token = ? AND m.server_id = ?`, linkToken, srv.ID).
				Scan(&l.ID, &l.MessageID, &l.Token, &l.URL, &ts)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("link %q: %w", linkToken, ErrNotFound)
			}
			if err != nil {
				return err
			}
			l.Timestamp = time.UnixMicro(ts)
			res.Link = &l
			if m, err = scanMessage(t.queryRow(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, l.MessageID)); err != nil {
				return err
			}
			if _, err := t.exec(ctx, `UPDATE messages SET clicked = ? WHERE id = ?`, at, m.ID); err != nil {
				return err
			}
			if _, err := t.exec(ctx, `INSERT INTO clicks (message_id, link_id, ip_address, user_agent, timestamp) VALUES (?, ?, ?, ?, ?)`,
				m.ID, l.ID, ip, ua, at); err != nil {
				return err
			}
		} else {
			m, err = scanMessage(t.queryRow(ctx, `SELECT `+messageColumns+` FROM messages WHERE token = ? AND server_id = ?`, messageToken, srv.ID))
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("message %q: %w", messageToken, ErrNotFound)
			}
			if err != nil {
				return err
			}
			if _, err := t.exec(ctx, `UPDATE messages SET loaded = ? WHERE id = ? AND loaded IS NULL`, at, m.ID); err != nil {
				return err
			}
			if _, err := t.exec(ctx, `INSERT INTO loads (message_id, ip_address, user_agent, timestamp) VALUES (?, ?, ?, ?)`,
				m.ID, ip, ua, at); err != nil {
				return err
			}
		}
		if events == nil {
			return nil
		}
		reqs := events(TrackingEvent{Message: m, Link: res.Link, Hit: hit, Webhooks: hooks})
		for _, r := range reqs {
			var id int64
			if err := t.queryRow(ctx, `INSERT INTO webhook_requests (uuid, server_id, webhook_id, message_id, url, event, payload,
				retry_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
				newUUID(), r.ServerID, nullID(r.WebhookID), nullID(r.MessageID), r.URL, r.Event, r.Payload, at, at).Scan(&id); err != nil {
				return fmt.Errorf("insert %s request: %w", r.Event, err)
			}
			res.WebhookIDs = append(res.WebhookIDs, id)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("record tracking hit: %w", err)
	}
	return res, nil
}

// MessageTracking is what tracking recorded about one message.
type MessageTracking struct {
	Parsed        bool         `json:"parsed"`
	TrackedLinks  int          `json:"tracked_links"`
	TrackedImages int          `json:"tracked_images"`
	Loaded        time.Time    `json:"loaded,omitzero"`
	Clicked       time.Time    `json:"clicked,omitzero"`
	Loads         []LoadEntry  `json:"loads"`
	Clicks        []ClickEntry `json:"clicks"`
}

// LoadEntry is one recorded load.
type LoadEntry struct {
	IP        string    `json:"ip_address"`
	UserAgent string    `json:"user_agent"`
	Timestamp time.Time `json:"timestamp"`
}

// ClickEntry is one recorded click with the URL clicked.
type ClickEntry struct {
	URL       string    `json:"url"`
	IP        string    `json:"ip_address"`
	UserAgent string    `json:"user_agent"`
	Timestamp time.Time `json:"timestamp"`
}

// maxActivity caps the loads and clicks listed for one message (newest first).
const maxActivity = 1000

// TrackingOf returns message id's tracking record with its newest loads and
// clicks (at most 1000 of each, newest first). Unknown wraps ErrNotFound.
func (s *Store) TrackingOf(ctx context.Context, id int64) (*MessageTracking, error) {
	var (
		mt              MessageTracking
		loaded, clicked sql.NullInt64
	)
	err := s.queryRow(ctx, `SELECT parsed, tracked_links, tracked_images, loaded, clicked FROM messages WHERE id = ?`, id).
		Scan(&mt.Parsed, &mt.TrackedLinks, &mt.TrackedImages, &loaded, &clicked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("tracking of message %d: %w", id, err)
	}
	mt.Loaded, mt.Clicked = fromMicros(loaded), fromMicros(clicked)
	mt.Loads, mt.Clicks = []LoadEntry{}, []ClickEntry{}
	rows, err := s.query(ctx, `SELECT ip_address, user_agent, timestamp FROM loads WHERE message_id = ? ORDER BY timestamp DESC, id DESC LIMIT ?`, id, maxActivity)
	if err != nil {
		return nil, fmt.Errorf("loads of message %d: %w", id, err)
	}
	for rows.Next() {
		var e LoadEntry
		var ts int64
		if err := rows.Scan(&e.IP, &e.UserAgent, &ts); err != nil {
			rows.Close()
			return nil, err
		}
		e.Timestamp = time.UnixMicro(ts)
		mt.Loads = append(mt.Loads, e)
	}
	rows.Close()
	rows, err = s.query(ctx, `SELECT l.url, c.ip_address, c.user_agent, c.timestamp FROM clicks c JOIN links l ON l.id = c.link_id
		WHERE c.message_id = ? ORDER BY c.timestamp DESC, c.id DESC LIMIT ?`, id, maxActivity)
	if err != nil {
		return nil, fmt.Errorf("clicks of message %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e ClickEntry
		var ts int64
		if err := rows.Scan(&e.URL, &e.IP, &e.UserAgent, &ts); err != nil {
			return nil, err
		}
		e.Timestamp = time.UnixMicro(ts)
		mt.Clicks = append(mt.Clicks, e)
	}
	return &mt, rows.Err()
}
