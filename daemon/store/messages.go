package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/untrusted"
)

// Message scopes.
const (
	ScopeIncoming = "incoming"
	ScopeOutgoing = "outgoing"
)

// Message statuses, as Postal names them.
const (
	StatusPending  = "Pending"
	StatusSent     = "Sent"
	StatusSoftFail = "SoftFail"
	StatusHardFail = "HardFail"
	StatusHeld     = "Held"
	StatusBounced  = "Bounced"
)

// Message is one message to one recipient (Postal stores one per recipient).
type Message struct {
	ID           int64     `json:"id"`
	ServerID     int64     `json:"server_id"`
	Token        string    `json:"token"`
	Scope        string    `json:"scope"`
	RcptTo       string    `json:"rcpt_to"`
	MailFrom     string    `json:"mail_from"`
	Subject      string    `json:"subject"`
	MessageID    string    `json:"message_id"`
	Tag          string    `json:"tag,omitempty"`
	Status       string    `json:"status"`
	Held         bool      `json:"held"`
	HoldExpiry   time.Time `json:"hold_expiry,omitzero"`
	Bounce       bool      `json:"bounce"`
	BounceForID  int64     `json:"bounce_for_id,omitempty"`
	DomainID     int64     `json:"domain_id,omitempty"`
	CredentialID int64     `json:"credential_id,omitempty"`
	RouteID      int64     `json:"route_id,omitempty"`
	// EndpointType and EndpointID name the route's additional endpoint
	// this message was created for; empty for the route's primary one.
	EndpointType        string    `json:"endpoint_type,omitempty"`
	EndpointID          int64     `json:"endpoint_id,omitempty"`
	RawMessageID        int64     `json:"raw_message_id,omitempty"`
	Size                int64     `json:"size"`
	ReceivedWithSSL     bool      `json:"received_with_ssl"`
	LastDeliveryAttempt time.Time `json:"last_delivery_attempt,omitzero"`
	Details             string    `json:"details,omitempty"`
	Timestamp           time.Time `json:"timestamp"`
}

// NewMessage is one recipient's message inside a Submission.
type NewMessage struct {
	ServerID     int64
	Scope        string // ScopeIncoming or ScopeOutgoing
	RcptTo       string
	MailFrom     string
	Subject      string
	MessageID    string
	Tag          string
	Token        string // generated when empty
	Status       string // StatusPending when empty
	Held         bool
	HoldExpiry   time.Time
	Bounce       bool
	BounceForID  int64
	DomainID     int64
	CredentialID int64
	RouteID      int64
	// EndpointType and EndpointID, when set, name the additional route
	// endpoint this message is for (see Message).
	EndpointType    string
	EndpointID      int64
	ReceivedWithSSL bool
	// Queue creates a queued_messages row (due now) for this message, for
	// stream QueueKind (the scope when empty) with destination QueueDomain.
	Queue       bool
	QueueDomain string
}

// Submission is one accepted message body and its recipients' messages.
type Submission struct {
	Raw      []byte
	Messages []NewMessage
	// RawMessageID, when set, is a stored raw message the messages share
	// (Raw is then only its size's measure and is not stored again).
	RawMessageID int64
	// IdempotencyID, when set, is an Idempotency-Key reservation
	// (ReserveIdempotencyKey) marked done with this raw message in the same
	// transaction, so a stored submission and its key commit together.
	IdempotencyID int64
}

// Accepted reports one stored message of a submission.
type Accepted struct {
	MessageID int64
	Token     string
	RcptTo    string
	// QueuedID is the queued_messages row, 0 when none was created.
	QueuedID int64
	Scope    string
	Domain   string
}

// InsertSubmissions stores submissions in ONE transaction (group commit):
// for each, the raw body, one message row per recipient and the queued rows
// asked for. It returns, per submission, the stored messages in order. When
// it returns nil everything is durable; on error nothing was stored. On
// PostgreSQL it takes two round trips (insertSubmissionsPipelined).
func (s *Store) InsertSubmissions(ctx context.Context, subs []Submission) ([][]Accepted, error) {
	if s.dialect.driver == Postgres {
		return s.insertSubmissionsPipelined(ctx, subs)
	}
	now := s.now().UnixMicro()
	var out [][]Accepted
	err := s.inTx(ctx, func(t tx) error {
		var err error
		tl := tally{}
		if out, err = insertSubmissions(ctx, t, now, subs, tl); err != nil {
			return err
		}
		return tl.write(ctx, t, time.UnixMicro(now))
	})
	if err != nil {
		return nil, fmt.Errorf("store submissions: %w", err)
	}
	return out, nil
}

// insertSubmissions stores submissions inside t (the outcome commit's
// bounces and new messages). On PostgreSQL it writes
// one multi-row INSERT per table (per maxBatchRows rows) for the bodies,
// the messages and the queued rows, whatever the number of submissions,
// plus one UPDATE per idempotency key; on SQLite, see
// insertSubmissionsRowByRow.
func insertSubmissions(ctx context.Context, t tx, now int64, subs []Submission, tl tally) ([][]Accepted, error) {
	if t.d.driver != Postgres {
		return insertSubmissionsRowByRow(ctx, t, now, subs, tl)
	}
	out := make([][]Accepted, len(subs))
	// A submission naming a stored body (RawMessageID) shares it.
	rawIDs := make([]int64, len(subs))
	var rawArgs [][]any
	for i, sub := range subs {
		if rawIDs[i] = sub.RawMessageID; rawIDs[i] == 0 {
			rawArgs = append(rawArgs, []any{sub.Raw, len(sub.Raw), now})
		}
	}
	newRaw, err := insertRows(ctx, t, `INSERT INTO raw_messages (data, size, created_at) VALUES `, "(?, ?, ?)", rawArgs)
	if err != nil {
		return nil, fmt.Errorf("insert raw messages: %w", err)
	}
	for i, k := 0, 0; i < len(rawIDs); i++ {
		if rawIDs[i] == 0 {
			rawIDs[i], k = newRaw[k], k+1
		}
	}
	var msgArgs [][]any
	for i, sub := range subs {
		if err := completeIdempotency(ctx, t, sub.IdempotencyID, rawIDs[i]); err != nil {
			return nil, err
		}
		acc := make([]Accepted, len(sub.Messages))
		for j, m := range sub.Messages {
			token, status := m.tokenAndStatus()
			acc[j] = Accepted{Token: token, RcptTo: m.RcptTo, Scope: m.Scope, Domain: m.QueueDomain}
			msgArgs = append(msgArgs, []any{m.ServerID, token, m.Scope, m.RcptTo, m.MailFrom, m.Subject, m.MessageID,
				nullString(m.Tag), status, m.Held, micros(m.HoldExpiry), m.Bounce, nullID(m.BounceForID), nullID(m.DomainID),
				nullID(m.CredentialID), nullID(m.RouteID), rawIDs[i], len(sub.Raw), m.ReceivedWithSSL, now,
				nullString(m.EndpointType), nullID(m.EndpointID)})
			tl.countMessage(m)
		}
		out[i] = acc
	}
	msgIDs, err := insertRows(ctx, t, `INSERT INTO messages (server_id, token, scope, rcpt_to, mail_from,
		subject, message_id, tag, status, held, hold_expiry, bounce, bounce_for_id, domain_id, credential_id, route_id,
		raw_message_id, size, received_with_ssl, timestamp, endpoint_type, endpoint_id) VALUES `,
		"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", msgArgs)
	if err != nil {
		return nil, fmt.Errorf("insert messages: %w", err)
	}
	var (
		qArgs [][]any
		qAt   []*Accepted
		n     int
	)
	for i, sub := range subs {
		for j, m := range sub.Messages {
			out[i][j].MessageID = msgIDs[n]
			if m.Queue {
				qArgs = append(qArgs, []any{msgIDs[n], m.ServerID, m.Scope, strings.ToLower(m.QueueDomain), now, now, now})
				qAt = append(qAt, &out[i][j])
			}
			n++
		}
	}
	qIDs, err := insertRows(ctx, t, `INSERT INTO queued_messages (message_id, server_id, scope, domain,
		retry_after, created_at, updated_at) VALUES `, "(?, ?, ?, ?, ?, ?, ?)", qArgs)
	if err != nil {
		return nil, fmt.Errorf("insert queued messages: %w", err)
	}
	for k, a := range qAt {
		a.QueuedID = qIDs[k]
	}
	return out, nil
}

// tokenAndStatus are the token and status m is stored with: its own, or a
// new random token and Pending.
func (m NewMessage) tokenAndStatus() (token, status string) {
	token, status = m.Token, m.Status
	if token == "" {
		token = RandomToken(8)
	}
	if status == "" {
		status = StatusPending
	}
	return token, status
}

// completeIdempotency marks the API Idempotency-Key reservation id (0:
// none) done with the stored body rawID, in the submission's transaction.
func completeIdempotency(ctx context.Context, t tx, id, rawID int64) error {
	if id == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `UPDATE api_idempotency SET raw_message_id = ?, done = TRUE WHERE id = ?`, rawID, id); err != nil {
		return fmt.Errorf("complete idempotency key %d: %w", id, err)
	}
	return nil
}

// insertRows inserts rows (each the arguments of one tuple) with
// `head` + tuple, tuple, ... `RETURNING id`, at most maxBatchRows rows and
// about maxBatchBytes of []byte arguments (message bodies) per statement,
// and returns the new ids in the order of rows. Both databases hand out the
// ids of one statement in increasing order as its rows are inserted (a
// PostgreSQL identity's sequence; SQLite's next rowid), so the returned ids,
// sorted, follow the order of the VALUES list whatever order RETURNING
// gives them in.
func insertRows(ctx context.Context, t tx, head, tuple string, rows [][]any) ([]int64, error) {
	ids := make([]int64, 0, len(rows))
	for start := 0; start < len(rows); {
		end, size := start, 0
		for end < len(rows) && end-start < maxBatchRows && (end == start || size < maxBatchBytes) {
			for _, a := range rows[end] {
				if b, ok := a.([]byte); ok {
					size += len(b)
				}
			}
			end++
		}
		got, err := insertChunk(ctx, t, head, tuple, rows[start:end])
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
		start = end
	}
	return ids, nil
}

// maxBatchBytes bounds the body bytes one multi-row INSERT carries, far
// below PostgreSQL's 1 GB cap on a protocol message.
const maxBatchBytes = 8 << 20

func insertChunk(ctx context.Context, t tx, head, tuple string, chunk [][]any) ([]int64, error) {
	var q strings.Builder
	q.Grow(len(head) + len(chunk)*(len(tuple)+2) + 16)
	q.WriteString(head)
	args := make([]any, 0, len(chunk)*len(chunk[0]))
	for i, r := range chunk {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(tuple)
		args = append(args, r...)
	}
	q.WriteString(" RETURNING id")
	res, err := t.query(ctx, q.String(), args...)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	got := make([]int64, 0, len(chunk))
	for res.Next() {
		var id int64
		if err := res.Scan(&id); err != nil {
			return nil, err
		}
		got = append(got, id)
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	if len(got) != len(chunk) {
		return nil, fmt.Errorf("%d ids returned for %d rows", len(got), len(chunk))
	}
	slices.Sort(got)
	return got, nil
}

// insertSubmissionsRowByRow is insertSubmissions on SQLite: three prepared
// statements per transaction, executed once per row, as before the
// multi-row form. In alternating scripts/bench/relay.sh runs on SQLite the
// multi-row form cost postald more CPU per message (0.88 against 0.80-0.83
// ms) though BenchmarkHotPaths, at 20 per batch, favoured it; SQLite has no
// round trips to save, so it keeps this form.
func insertSubmissionsRowByRow(ctx context.Context, t tx, now int64, subs []Submission, tl tally) ([][]Accepted, error) {
	out := make([][]Accepted, len(subs))
	rawStmt, err := t.PrepareContext(ctx, t.d.rebind(`INSERT INTO raw_messages (data, size, created_at) VALUES (?, ?, ?) RETURNING id`))
	if err != nil {
		return nil, fmt.Errorf("prepare raw insert: %w", err)
	}
	defer rawStmt.Close()
	msgStmt, err := t.PrepareContext(ctx, t.d.rebind(`INSERT INTO messages (server_id, token, scope, rcpt_to, mail_from,
		subject, message_id, tag, status, held, hold_expiry, bounce, bounce_for_id, domain_id, credential_id, route_id,
		raw_message_id, size, received_with_ssl, timestamp, endpoint_type, endpoint_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`))
	if err != nil {
		return nil, fmt.Errorf("prepare message insert: %w", err)
	}
	defer msgStmt.Close()
	qStmt, err := t.PrepareContext(ctx, t.d.rebind(`INSERT INTO queued_messages (message_id, server_id, scope, domain,
		retry_after, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`))
	if err != nil {
		return nil, fmt.Errorf("prepare queue insert: %w", err)
	}
	defer qStmt.Close()
	for i, sub := range subs {
		rawID := sub.RawMessageID
		if rawID == 0 {
			if err := rawStmt.QueryRowContext(ctx, sub.Raw, len(sub.Raw), now).Scan(&rawID); err != nil {
				return nil, fmt.Errorf("insert raw message: %w", err)
			}
		}
		if err := completeIdempotency(ctx, t, sub.IdempotencyID, rawID); err != nil {
			return nil, err
		}
		acc := make([]Accepted, len(sub.Messages))
		for j, m := range sub.Messages {
			token, status := m.tokenAndStatus()
			var id int64
			if err := msgStmt.QueryRowContext(ctx, m.ServerID, token, m.Scope, m.RcptTo, m.MailFrom, m.Subject, m.MessageID,
				nullString(m.Tag), status, m.Held, micros(m.HoldExpiry), m.Bounce, nullID(m.BounceForID), nullID(m.DomainID),
				nullID(m.CredentialID), nullID(m.RouteID), rawID, len(sub.Raw), m.ReceivedWithSSL, now,
				nullString(m.EndpointType), nullID(m.EndpointID)).Scan(&id); err != nil {
				return nil, fmt.Errorf("insert message for %s: %w", m.RcptTo, err)
			}
			acc[j] = Accepted{MessageID: id, Token: token, RcptTo: m.RcptTo, Scope: m.Scope, Domain: m.QueueDomain}
			tl.countMessage(m)
			if m.Queue {
				if err := qStmt.QueryRowContext(ctx, id, m.ServerID, m.Scope, strings.ToLower(m.QueueDomain), now, now, now).Scan(&acc[j].QueuedID); err != nil {
					return nil, fmt.Errorf("insert queued message for %s: %w", m.RcptTo, err)
				}
			}
		}
		out[i] = acc
	}
	return out, nil
}

const messageColumns = `id, server_id, token, scope, rcpt_to, mail_from, subject, message_id, tag, status, held, hold_expiry,
	bounce, bounce_for_id, domain_id, credential_id, route_id, raw_message_id, size, received_with_ssl,
	last_delivery_attempt, details, timestamp, endpoint_type, endpoint_id`

func scanMessage(sc interface{ Scan(...any) error }) (*Message, error) {
	var ms messageScan
	if err := sc.Scan(ms.dest()...); err != nil {
		return nil, err
	}
	return ms.message(), nil
}

// messageScan holds the columns of messageColumns as they are scanned; every
// one is nullable so that a LEFT JOIN that found no message scans too.
type messageScan struct {
	id, serverID, holdExp, bounceFor, dom, cred, rt, raw, size, last, ts, epID sql.NullInt64
	token, scope, rcptTo, mailFrom, subject, messageID, tag, status, details   sql.NullString
	epType                                                                     sql.NullString
	held, bounce, ssl                                                          sql.NullBool
}

func (ms *messageScan) dest() []any {
	return []any{&ms.id, &ms.serverID, &ms.token, &ms.scope, &ms.rcptTo, &ms.mailFrom, &ms.subject, &ms.messageID, &ms.tag,
		&ms.status, &ms.held, &ms.holdExp, &ms.bounce, &ms.bounceFor, &ms.dom, &ms.cred, &ms.rt, &ms.raw, &ms.size, &ms.ssl,
		&ms.last, &ms.details, &ms.ts, &ms.epType, &ms.epID}
}

// message returns the scanned message, nil when the id is NULL (no row).
func (ms *messageScan) message() *Message {
	if !ms.id.Valid {
		return nil
	}
	return &Message{ID: ms.id.Int64, ServerID: ms.serverID.Int64, Token: ms.token.String, Scope: ms.scope.String,
		RcptTo: ms.rcptTo.String, MailFrom: ms.mailFrom.String, Subject: ms.subject.String, MessageID: ms.messageID.String,
		Tag: ms.tag.String, Status: ms.status.String, Held: ms.held.Bool, HoldExpiry: fromMicros(ms.holdExp),
		Bounce: ms.bounce.Bool, BounceForID: ms.bounceFor.Int64, DomainID: ms.dom.Int64, CredentialID: ms.cred.Int64,
		RouteID: ms.rt.Int64, EndpointType: ms.epType.String, EndpointID: ms.epID.Int64, RawMessageID: ms.raw.Int64,
		Size: ms.size.Int64, ReceivedWithSSL: ms.ssl.Bool, LastDeliveryAttempt: fromMicros(ms.last),
		Details: ms.details.String, Timestamp: time.UnixMicro(ms.ts.Int64)}
}

// Message looks a message up by id.
func (s *Store) Message(ctx context.Context, id int64) (*Message, error) {
	m, err := scanMessage(s.queryRow(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("message %d: %w", id, err)
	}
	return m, nil
}

// MessageByToken looks a message up by its token.
func (s *Store) MessageByToken(ctx context.Context, token string) (*Message, error) {
	m, err := scanMessage(s.queryRow(ctx, `SELECT `+messageColumns+` FROM messages WHERE token = ?`, token))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message %s: %w", token, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", token, err)
	}
	return m, nil
}

// MaxByMessageID is the most messages OutgoingByMessageID returns.
const MaxByMessageID = 100

// OutgoingByMessageID returns the server's outgoing messages whose
// Message-ID (stored without angle brackets) is messageID, oldest first, at
// most MaxByMessageID: one per recipient of the submission that carried
// it. An empty messageID finds nothing.
func (s *Store) OutgoingByMessageID(ctx context.Context, serverID int64, messageID string) ([]*Message, error) {
	if messageID == "" {
		return nil, nil
	}
	rows, err := s.query(ctx, `SELECT `+messageColumns+` FROM messages WHERE server_id = ? AND message_id = ?
		AND scope = ? ORDER BY id LIMIT `+strconv.Itoa(MaxByMessageID), serverID, messageID, ScopeOutgoing)
	if err != nil {
		return nil, fmt.Errorf("messages with Message-ID %q: %w", messageID, err)
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("messages with Message-ID %q: %w", messageID, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("messages with Message-ID %q: %w", messageID, err)
	}
	return out, nil
}

// Messages loads messages by id; missing ids are left out.
func (s *Store) Messages(ctx context.Context, ids []int64) ([]*Message, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	in, args := s.dialect.inIDs("id", ids)
	rows, err := s.query(ctx, `SELECT `+messageColumns+` FROM messages WHERE `+in+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("load messages: %w", err)
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("load messages: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RawMessage returns a stored message body. A body removed by retention
// wraps ErrNotFound.
func (s *Store) RawMessage(ctx context.Context, id int64) ([]byte, error) {
	var data []byte
	err := s.queryRow(ctx, `SELECT data FROM raw_messages WHERE id = ?`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("raw message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("raw message %d: %w", id, err)
	}
	return data, nil
}

// Delivery is one attempt to deliver a message (or a status change such as
// a hold), as Postal records them.
type Delivery struct {
	ID          int64     `json:"id"`
	MessageID   int64     `json:"message_id"`
	Status      string    `json:"status"`
	Details     string    `json:"details"`
	Output      string    `json:"output"`
	SentWithSSL bool      `json:"sent_with_ssl"`
	LogID       string    `json:"log_id"`
	Time        float64   `json:"time"`
	Timestamp   time.Time `json:"timestamp"`
}

// Deliveries lists a message's deliveries, oldest first.
func (s *Store) Deliveries(ctx context.Context, messageID int64) ([]*Delivery, error) {
	rows, err := s.query(ctx, `SELECT id, message_id, status, details, output, sent_with_ssl, log_id, time, timestamp
		FROM deliveries WHERE message_id = ? ORDER BY id`, messageID)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []*Delivery
	for rows.Next() {
		var (
			d  Delivery
			tm sql.NullFloat64
			ts int64
		)
		if err := rows.Scan(&d.ID, &d.MessageID, &d.Status, &d.Details, &d.Output, &d.SentWithSSL, &d.LogID, &tm, &ts); err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		d.Time, d.Timestamp = tm.Float64, time.UnixMicro(ts)
		out = append(out, &d)
	}
	return out, rows.Err()
}

// QueuedMessage is a message waiting for (re)delivery or processing.
type QueuedMessage struct {
	ID          int64     `json:"id"`
	MessageID   int64     `json:"message_id"`
	ServerID    int64     `json:"server_id"`
	Scope       string    `json:"scope"`
	Domain      string    `json:"domain"`
	IPAddressID int64     `json:"ip_address_id,omitempty"`
	Attempts    int       `json:"attempts"`
	RetryAfter  time.Time `json:"retry_after"`
	LockedBy    string    `json:"locked_by,omitempty"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
	CreatedAt   time.Time `json:"created_at"`
	// Loaded, set on the rows ClaimQueued and ClaimQueuedForDomain return,
	// is what handling the row reads, loaded with the claim; nil elsewhere.
	Loaded *Loaded `json:"-"`
}

const queuedColumns = `id, message_id, server_id, scope, domain, ip_address_id, attempts, retry_after, locked_by, locked_until, created_at`

func scanQueued(sc interface{ Scan(...any) error }) (*QueuedMessage, error) {
	var (
		q             QueuedMessage
		ip, until     sql.NullInt64
		by            sql.NullString
		retry, create int64
	)
	if err := sc.Scan(&q.ID, &q.MessageID, &q.ServerID, &q.Scope, &q.Domain, &ip, &q.Attempts, &retry, &by, &until, &create); err != nil {
		return nil, err
	}
	q.IPAddressID, q.LockedBy, q.LockedUntil = ip.Int64, by.String, fromMicros(until)
	q.RetryAfter, q.CreatedAt = time.UnixMicro(retry), time.UnixMicro(create)
	return &q, nil
}

func collectQueued(rows *sql.Rows) ([]*QueuedMessage, error) {
	defer rows.Close()
	var out []*QueuedMessage
	for rows.Next() {
		q, err := scanQueued(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// FailQueued marks the message of a queued row HardFail with reason and
// removes the queued row, whoever holds it. It is used for dead letters
// (work that repeatedly killed or stalled its workers).
func (s *Store) FailQueued(ctx context.Context, queuedID int64, reason string) error {
	now := s.now().UnixMicro()
	return s.inTx(ctx, func(t tx) error {
		var msgID int64
		err := t.queryRow(ctx, `SELECT message_id FROM queued_messages WHERE id = ?`, queuedID).Scan(&msgID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("fail queued message %d: %w", queuedID, err)
		}
		if _, err := t.exec(ctx, `DELETE FROM queued_messages WHERE id = ?`, queuedID); err != nil {
			return fmt.Errorf("fail queued message %d: %w", queuedID, err)
		}
		st, err := prepareOutcome(ctx, t)
		if err != nil {
			return err
		}
		defer st.close()
		return st.apply(ctx, now, Outcome{messageID: msgID, status: StatusHardFail, details: reason,
			delivery: &NewDelivery{Status: StatusHardFail, Details: reason}})
	})
}

// DueQueued lists queued messages that are due at now and not locked (or
// whose lock expired), with id > afterID, in id order, at most limit: the
// reconciliation scan that re-dispatches work Redis lost.
func (s *Store) DueQueued(ctx context.Context, now time.Time, afterID int64, limit int) ([]*QueuedMessage, error) {
	n := now.UnixMicro()
	rows, err := s.query(ctx, `SELECT `+queuedColumns+` FROM queued_messages
		WHERE id > ? AND retry_after <= ? AND (locked_by IS NULL OR locked_until < ?) ORDER BY id LIMIT ?`, afterID, n, n, limit)
	if err != nil {
		return nil, fmt.Errorf("list due queued messages: %w", err)
	}
	out, err := collectQueued(rows)
	if err != nil {
		return nil, fmt.Errorf("list due queued messages: %w", err)
	}
	return out, nil
}

// QueuedMessages lists queued messages in id order from afterID, at most
// limit (for postalctl queue).
func (s *Store) QueuedMessages(ctx context.Context, afterID int64, limit int) ([]*QueuedMessage, error) {
	rows, err := s.query(ctx, `SELECT `+queuedColumns+` FROM queued_messages WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list queued messages: %w", err)
	}
	out, err := collectQueued(rows)
	if err != nil {
		return nil, fmt.Errorf("list queued messages: %w", err)
	}
	return out, nil
}

// QueueCounts summarises the queue: total rows, rows due now, rows locked.
type QueueCounts struct {
	Total  int64 `json:"total"`
	Due    int64 `json:"due"`
	Locked int64 `json:"locked"`
}

// CountQueued returns QueueCounts at now.
func (s *Store) CountQueued(ctx context.Context, now time.Time) (QueueCounts, error) {
	var c QueueCounts
	n := now.UnixMicro()
	err := s.queryRow(ctx, `SELECT count(*),
		COALESCE(sum(CASE WHEN retry_after <= ? THEN 1 ELSE 0 END), 0),
		COALESCE(sum(CASE WHEN locked_by IS NOT NULL AND locked_until >= ? THEN 1 ELSE 0 END), 0)
		FROM queued_messages`, n, n).Scan(&c.Total, &c.Due, &c.Locked)
	if err != nil {
		return c, fmt.Errorf("count queued messages: %w", err)
	}
	return c, nil
}

// placeholders returns "?, ?, ..." with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func int64Args(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// Caps on the text the store keeps from outcomes. Callers clean foreign text
// where it enters (package untrusted); truncate is the last line of defence,
// so that no reply text, however hostile, makes a database refuse a batch.
const (
	maxOutput  = 512  // deliveries.output, as Postal keeps it
	maxDetails = 4096 // messages.details, deliveries.details, suppressions.reason
)

// truncate returns s as valid UTF-8 of at most n bytes, cut on a character
// boundary, without NUL or other control characters (tab and line feed are
// kept; bytes that are not UTF-8 are read as ISO-8859-1): see
// untrusted.Lines. PostgreSQL refuses invalid UTF-8 and NUL in text columns
// (SQLSTATE 22021), which would roll back a whole outcome batch.
func truncate(s string, n int) string { return untrusted.Lines(s, n) }
