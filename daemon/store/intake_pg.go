package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// insertSubmissionsPipelined is InsertSubmissions on PostgreSQL in two
// round trips whatever the batch's size: the new rows' ids are taken from
// the tables' identity sequences first (one statement), then the bodies,
// messages and queued rows (each one INSERT ... SELECT FROM unnest(...),
// bodies split at about maxBatchBytes), the idempotency keys and the
// statistics travel in one pgx batch: one pipeline ending in one Sync, so
// they commit together as one implicit transaction (durably: the commit
// waits for the WAL flush), or not at all. Ids taken for a batch that then
// fails are skipped, as an identity's are after a rollback.
func (s *Store) insertSubmissionsPipelined(ctx context.Context, subs []Submission) ([][]Accepted, error) {
	if len(subs) == 0 {
		return nil, nil
	}
	now := s.now().UnixMicro()
	out := make([][]Accepted, len(subs))
	tl := tally{}
	nRaw, nMsg, nQueued := 0, 0, 0
	for i, sub := range subs {
		if sub.RawMessageID == 0 {
			nRaw++
		}
		acc := make([]Accepted, len(sub.Messages))
		for j, m := range sub.Messages {
			token, _ := m.tokenAndStatus()
			acc[j] = Accepted{Token: token, RcptTo: m.RcptTo, Scope: m.Scope, Domain: m.QueueDomain}
			tl.countMessage(m)
			nMsg++
			if m.Queue {
				nQueued++
			}
		}
		out[i] = acc
	}
	release, err := s.admitWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	err = s.withPgx(ctx, func(c *pgx.Conn) error {
		var rawIDs, msgIDs, qIDs []int64
		if err := c.QueryRow(ctx, `SELECT
			(SELECT array_agg(nextval('raw_messages_id_seq')) FROM generate_series(1, $1::int)),
			(SELECT array_agg(nextval('messages_id_seq')) FROM generate_series(1, $2::int)),
			(SELECT array_agg(nextval('queued_messages_id_seq')) FROM generate_series(1, $3::int))`,
			nRaw, nMsg, nQueued).Scan(&rawIDs, &msgIDs, &qIDs); err != nil {
			return fmt.Errorf("take ids: %w", err)
		}
		if len(rawIDs) != nRaw || len(msgIDs) != nMsg || len(qIDs) != nQueued {
			return fmt.Errorf("took %d, %d, %d ids for %d, %d, %d rows", len(rawIDs), len(msgIDs), len(qIDs), nRaw, nMsg, nQueued)
		}
		b := &pgx.Batch{}
		var raw rawCols
		var msg msgCols
		var q queuedCols
		ri, mi, qi := 0, 0, 0
		var keys [][2]int64 // raw message id, idempotency key id
		for i, sub := range subs {
			rawID := sub.RawMessageID
			if rawID == 0 {
				rawID = rawIDs[ri]
				ri++
				if raw.bytes > 0 && raw.bytes+len(sub.Raw) > maxBatchBytes {
					raw.queue(b)
					raw = rawCols{}
				}
				raw.add(rawID, sub.Raw, now)
			}
			if sub.IdempotencyID != 0 {
				keys = append(keys, [2]int64{rawID, sub.IdempotencyID})
			}
			for j, m := range sub.Messages {
				out[i][j].MessageID = msgIDs[mi]
				_, status := m.tokenAndStatus()
				msg.add(msgIDs[mi], m, out[i][j].Token, status, rawID, int64(len(sub.Raw)), now)
				if m.Queue {
					out[i][j].QueuedID = qIDs[qi]
					q.add(qIDs[qi], msgIDs[mi], m, now)
					qi++
				}
				mi++
			}
		}
		raw.queue(b)
		msg.queue(b)
		q.queue(b)
		for _, k := range keys {
			b.Queue(`UPDATE api_idempotency SET raw_message_id = $1, done = TRUE WHERE id = $2`, k[0], k[1])
		}
		for _, st := range tl.statements(time.UnixMicro(now)) {
			b.Queue(s.dialect.rebind(st.q), st.args...)
		}
		if err := c.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store submissions: %w", err)
	}
	return out, nil
}

// rawCols are raw_messages rows as one array per column, for unnest.
type rawCols struct {
	ids, sizes, created []int64
	data                [][]byte
	bytes               int
}

func (r *rawCols) add(id int64, data []byte, now int64) {
	r.ids, r.data, r.sizes, r.created = append(r.ids, id), append(r.data, data), append(r.sizes, int64(len(data))), append(r.created, now)
	r.bytes += len(data)
}

func (r *rawCols) queue(b *pgx.Batch) {
	if len(r.ids) == 0 {
		return
	}
	b.Queue(`INSERT INTO raw_messages (id, data, size, created_at)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::bigint[])`, r.ids, r.data, r.sizes, r.created)
}

// msgCols are messages rows as one array per column, for unnest.
type msgCols struct {
	ids, servers, rawIDs, sizes, timestamps                      []int64
	tokens, scopes, rcpts, froms, subjects, messageIDs, statuses []string
	tags, epTypes                                                []*string
	holdExp, bounceFor, domains, creds, routes, epIDs            []*int64
	held, bounce, ssl                                            []bool
}

func (c *msgCols) add(id int64, m NewMessage, token, status string, rawID, size, now int64) {
	c.ids, c.servers, c.rawIDs, c.sizes, c.timestamps = append(c.ids, id), append(c.servers, m.ServerID),
		append(c.rawIDs, rawID), append(c.sizes, size), append(c.timestamps, now)
	c.tokens, c.scopes, c.rcpts, c.froms = append(c.tokens, token), append(c.scopes, m.Scope), append(c.rcpts, m.RcptTo),
		append(c.froms, m.MailFrom)
	c.subjects, c.messageIDs, c.statuses = append(c.subjects, m.Subject), append(c.messageIDs, m.MessageID), append(c.statuses, status)
	c.tags, c.epTypes = append(c.tags, optString(m.Tag)), append(c.epTypes, optString(m.EndpointType))
	var hold *int64
	if !m.HoldExpiry.IsZero() {
		v := m.HoldExpiry.UnixMicro()
		hold = &v
	}
	c.holdExp, c.bounceFor, c.domains = append(c.holdExp, hold), append(c.bounceFor, optID(m.BounceForID)), append(c.domains, optID(m.DomainID))
	c.creds, c.routes, c.epIDs = append(c.creds, optID(m.CredentialID)), append(c.routes, optID(m.RouteID)), append(c.epIDs, optID(m.EndpointID))
	c.held, c.bounce, c.ssl = append(c.held, m.Held), append(c.bounce, m.Bounce), append(c.ssl, m.ReceivedWithSSL)
}

func (c *msgCols) queue(b *pgx.Batch) {
	if len(c.ids) == 0 {
		return
	}
	b.Queue(`INSERT INTO messages (id, server_id, token, scope, rcpt_to, mail_from, subject, message_id, tag, status,
		held, hold_expiry, bounce, bounce_for_id, domain_id, credential_id, route_id, raw_message_id, size,
		received_with_ssl, timestamp, endpoint_type, endpoint_id)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::boolean[], $12::bigint[], $13::boolean[], $14::bigint[], $15::bigint[],
			$16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[], $20::boolean[], $21::bigint[], $22::text[], $23::bigint[])`,
		c.ids, c.servers, c.tokens, c.scopes, c.rcpts, c.froms, c.subjects, c.messageIDs, c.tags, c.statuses,
		c.held, c.holdExp, c.bounce, c.bounceFor, c.domains, c.creds, c.routes, c.rawIDs, c.sizes,
		c.ssl, c.timestamps, c.epTypes, c.epIDs)
}

// queuedCols are queued_messages rows as one array per column, for unnest.
type queuedCols struct {
	ids, messages, servers, times []int64
	scopes, domains               []string
}

func (c *queuedCols) add(id, messageID int64, m NewMessage, now int64) {
	c.ids, c.messages, c.servers, c.times = append(c.ids, id), append(c.messages, messageID), append(c.servers, m.ServerID), append(c.times, now)
	c.scopes, c.domains = append(c.scopes, m.Scope), append(c.domains, strings.ToLower(m.QueueDomain))
}

func (c *queuedCols) queue(b *pgx.Batch) {
	if len(c.ids) == 0 {
		return
	}
	b.Queue(`INSERT INTO queued_messages (id, message_id, server_id, scope, domain, retry_after, created_at, updated_at)
		SELECT id, m, s, sc, d, t, t, t FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
			AS u(id, m, s, sc, d, t)`, c.ids, c.messages, c.servers, c.scopes, c.domains, c.times)
}

// optString is s, nil when empty (NULL in an array).
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// optID is id, nil when 0 (NULL in an array).
func optID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}
