package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/store"
)

// Action is an operator action on one message.
type Action string

// The actions the Messages screen offers.
const (
	// ActRetry makes a queued message due now (or requeues a failed one)
	// and dispatches it.
	ActRetry Action = "retry"
	// ActHold takes a queued message out of the queue and holds it.
	ActHold Action = "hold"
	// ActRelease queues a held message again, skipping the hold checks.
	ActRelease Action = "release"
	// ActCancel removes a queued or held message from the queue for good.
	ActCancel Action = "cancel"
	// ActDelete deletes the message with its deliveries.
	ActDelete Action = "delete"
	// ActUnsuppress removes the message server's suppression of its
	// recipient (the message itself is unchanged: release or retry it).
	ActUnsuppress Action = "unsuppress"
)

// Actions lists every Action in the order the help shows them.
func Actions() []Action {
	return []Action{ActRetry, ActHold, ActRelease, ActCancel, ActDelete, ActUnsuppress}
}

// Result is what an action did.
type Result struct {
	Action    Action `json:"action"`
	MessageID int64  `json:"message_id"`
	// QueuedID is the queued row a retry or release made due (0 otherwise).
	QueuedID int64 `json:"queued_id,omitempty"`
	// Dispatched says whether the stream entry was added to Redis after a
	// retry or release; when it was not, the row is due in SQL and the
	// requeuer's reconciliation dispatches it. DispatchError says why.
	Dispatched    bool   `json:"dispatched"`
	DispatchError string `json:"dispatch_error,omitempty"`
	// Unsuppressed names the address whose suppression an unsuppress
	// removed ("" when there was none).
	Unsuppressed string `json:"unsuppressed,omitempty"`
}

// Detail is one message with what hangs off it.
type Detail struct {
	Message    *store.Message       `json:"message"`
	Queued     *store.QueuedMessage `json:"queued,omitempty"`
	Deliveries []*store.Delivery    `json:"deliveries"`
	// Headers is the header block of the stored body (at most
	// MaxHeaderBytes), "" when retention removed the body.
	Headers string `json:"headers,omitempty"`
	// WebhookAttempts are the logged attempts of the webhook requests
	// about the message, newest first (at most MaxDetailWebhooks);
	// PendingWebhooks the requests not yet delivered (being retried or
	// waiting for their first attempt).
	WebhookAttempts []*store.WebhookAttempt `json:"webhook_attempts"`
	PendingWebhooks []*store.WebhookRequest `json:"pending_webhooks"`
	// Tracking is what open and click tracking recorded: the newest loads
	// and clicks.
	Tracking *store.MessageTracking `json:"tracking,omitempty"`
}

// MaxDetailWebhooks caps Detail.WebhookAttempts.
const MaxDetailWebhooks = 50

// MaxHeaderBytes caps the header block Detail carries.
const MaxHeaderBytes = 16 << 10

// MessageSource is the message search, detail and actions of the console.
// Implementations must be safe to call from any goroutine.
type MessageSource interface {
	// SearchMessages returns one page of messages, newest first.
	SearchMessages(ctx context.Context, f store.MessageFilter) (store.MessagePage, error)
	// MessageDetail returns one message; an unknown id wraps
	// store.ErrNotFound.
	MessageDetail(ctx context.Context, id int64) (Detail, error)
	// Act performs a on message id: SQL first (committed before it
	// returns), then the Redis dispatch, whose failure is reported in the
	// Result and not as an error.
	Act(ctx context.Context, a Action, id int64) (Result, error)
	// RequeueDead puts the most recent dead letters (at most limit) whose
	// queued row or webhook request still exists back on their streams and
	// leaves the others.
	RequeueDead(ctx context.Context, limit int) (DeadResult, error)
}

// DeadResult is what RequeueDead did.
type DeadResult struct {
	Requeued int `json:"requeued"`
	// Skipped letters stay dead: their SQL row is gone.
	Skipped int `json:"skipped"`
}

// MessageStore is the part of *store.Store the message actions use.
type MessageStore interface {
	SearchMessages(ctx context.Context, f store.MessageFilter) (store.MessagePage, error)
	Message(ctx context.Context, id int64) (*store.Message, error)
	Deliveries(ctx context.Context, messageID int64) ([]*store.Delivery, error)
	QueuedForMessage(ctx context.Context, messageID int64) (*store.QueuedMessage, error)
	RawMessage(ctx context.Context, id int64) ([]byte, error)
	ReleaseHeld(ctx context.Context, messageID int64) (*store.QueuedMessage, error)
	RetryNow(ctx context.Context, id int64) (*store.QueuedMessage, error)
	HoldMessage(ctx context.Context, id int64) error
	CancelMessage(ctx context.Context, id int64) error
	DeleteMessage(ctx context.Context, id int64) error
	QueuedByIDs(ctx context.Context, ids []int64) ([]*store.QueuedMessage, error)
	WebhookRequests(ctx context.Context, ids []int64) ([]*store.WebhookRequest, error)
	RemoveSuppression(ctx context.Context, serverID int64, address string) (bool, error)
	WebhookAttempts(ctx context.Context, f store.WebhookAttemptFilter) ([]*store.WebhookAttempt, error)
	WebhookRequestsOfMessage(ctx context.Context, id int64) ([]*store.WebhookRequest, error)
	TrackingOf(ctx context.Context, id int64) (*store.MessageTracking, error)
	InstallationID(ctx context.Context) (string, error)
}

// checkPrefix refuses an action that changes Redis when another
// installation's database owns the key prefix: its entries would reach that
// installation's workers (docs/operations.md). A Redis that does not
// answer is not a refusal: SQL acts and reconciliation dispatches.
func (l *Live) checkPrefix(ctx context.Context, ms MessageStore) error {
	if l.o.Redis == nil {
		return nil
	}
	id, err := ms.InstallationID(ctx)
	if err != nil {
		return err
	}
	return redisconn.CheckPrefix(ctx, l.o.Redis, l.o.Keys, id)
}

// RequeueDead reads up to limit dead letters, asks SQL which rows still
// exist, and requeues those letters.
func (l *Live) RequeueDead(ctx context.Context, limit int) (DeadResult, error) {
	ms, err := l.messageStore()
	if err != nil {
		return DeadResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	if err := l.checkPrefix(ctx, ms); err != nil {
		return DeadResult{}, err
	}
	letters, err := l.queue.DeadLetters(ctx, limit)
	if err != nil {
		return DeadResult{}, err
	}
	var rowIDs, hookIDs []int64
	for _, d := range letters {
		if d.Kind == queue.Webhooks {
			hookIDs = append(hookIDs, d.Job.ID)
		} else {
			rowIDs = append(rowIDs, d.Job.ID)
		}
	}
	exists := map[string]bool{}
	rows, err := ms.QueuedByIDs(ctx, rowIDs)
	if err != nil {
		return DeadResult{}, err
	}
	for _, r := range rows {
		exists[fmt.Sprintf("row %d", r.ID)] = true
	}
	hooks, err := ms.WebhookRequests(ctx, hookIDs)
	if err != nil {
		return DeadResult{}, err
	}
	for _, h := range hooks {
		exists[fmt.Sprintf("hook %d", h.ID)] = true
	}
	var res DeadResult
	var again []queue.DeadLetter
	for _, d := range letters {
		k := fmt.Sprintf("row %d", d.Job.ID)
		if d.Kind == queue.Webhooks {
			k = fmt.Sprintf("hook %d", d.Job.ID)
		}
		if exists[k] {
			again = append(again, d)
		} else {
			res.Skipped++
		}
	}
	res.Requeued, err = l.queue.RequeueDead(ctx, again...)
	return res, err
}

// errNoStore is returned by the message methods when no database is open.
func (l *Live) messageStore() (MessageStore, error) {
	ms, ok := l.o.Store.(MessageStore)
	if !ok || l.o.Store == nil {
		err := l.o.StoreErr
		if err == nil {
			err = errors.New("no database configured")
		}
		return nil, fmt.Errorf("database unavailable: %w", err)
	}
	return ms, nil
}

// SearchMessages reads one page under the configured timeout.
func (l *Live) SearchMessages(ctx context.Context, f store.MessageFilter) (store.MessagePage, error) {
	ms, err := l.messageStore()
	if err != nil {
		return store.MessagePage{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	return ms.SearchMessages(ctx, f)
}

// MessageDetail reads a message, its queued row, deliveries and headers.
func (l *Live) MessageDetail(ctx context.Context, id int64) (Detail, error) {
	ms, err := l.messageStore()
	if err != nil {
		return Detail{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	m, err := ms.Message(ctx, id)
	if err != nil {
		return Detail{}, err
	}
	d := Detail{Message: m, Deliveries: []*store.Delivery{}}
	if ds, err := ms.Deliveries(ctx, id); err != nil {
		return Detail{}, err
	} else if ds != nil {
		d.Deliveries = ds
	}
	switch q, err := ms.QueuedForMessage(ctx, id); {
	case err == nil:
		d.Queued = q
	case !errors.Is(err, store.ErrNotFound):
		return Detail{}, err
	}
	if m.RawMessageID != 0 {
		raw, err := ms.RawMessage(ctx, m.RawMessageID)
		switch {
		case err == nil:
			d.Headers = HeaderBlock(raw)
		case !errors.Is(err, store.ErrNotFound):
			return Detail{}, err
		}
	}
	if d.WebhookAttempts, err = ms.WebhookAttempts(ctx, store.WebhookAttemptFilter{MessageID: id, Limit: MaxDetailWebhooks}); err != nil {
		return Detail{}, err
	}
	if d.PendingWebhooks, err = ms.WebhookRequestsOfMessage(ctx, id); err != nil {
		return Detail{}, err
	}
	if d.Tracking, err = ms.TrackingOf(ctx, id); err != nil {
		return Detail{}, err
	}
	return d, nil
}

// HeaderBlock returns the header block of a raw message: everything before
// the first empty line, at most MaxHeaderBytes, as valid UTF-8 with CRLF
// turned into LF.
func HeaderBlock(raw []byte) string {
	raw = raw[:min(len(raw), MaxHeaderBytes)]
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		raw = raw[:i]
	} else if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		raw = raw[:i]
	}
	s := strings.ToValidUTF8(string(raw), "\uFFFD")
	return strings.ReplaceAll(s, "\r\n", "\n")
}

// Act performs a in SQL, then dispatches the row a retry or release made
// due.
func (l *Live) Act(ctx context.Context, a Action, id int64) (Result, error) {
	ms, err := l.messageStore()
	if err != nil {
		return Result{}, err
	}
	res := Result{Action: a, MessageID: id}
	sctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	if a != ActUnsuppress {
		if err := l.checkPrefix(sctx, ms); err != nil {
			return Result{}, err
		}
	}
	var q *store.QueuedMessage
	switch a {
	case ActRetry:
		q, err = ms.RetryNow(sctx, id)
	case ActRelease:
		q, err = ms.ReleaseHeld(sctx, id)
	case ActHold:
		err = ms.HoldMessage(sctx, id)
	case ActCancel:
		err = ms.CancelMessage(sctx, id)
	case ActDelete:
		err = ms.DeleteMessage(sctx, id)
	case ActUnsuppress:
		var m *store.Message
		if m, err = ms.Message(sctx, id); err == nil {
			var removed bool
			if removed, err = ms.RemoveSuppression(sctx, m.ServerID, m.RcptTo); removed {
				res.Unsuppressed = strings.ToLower(m.RcptTo)
			}
		}
	default:
		return Result{}, fmt.Errorf("unknown action %q", a)
	}
	if err != nil {
		return Result{}, err
	}
	if q == nil {
		return res, nil
	}
	res.QueuedID = q.ID
	rctx, rcancel := context.WithTimeout(ctx, l.o.Timeout)
	defer rcancel()
	if err := l.queue.Enqueue(rctx, queue.Kind(q.Scope), queue.Job{ID: q.ID, Domain: q.Domain}); err != nil {
		res.DispatchError = err.Error()
		return res, nil
	}
	res.Dispatched = true
	return res, nil
}

// FakeMessages is an in-memory MessageSource for tests: it filters by
// server, scope, status, held, from, to, tag and subject, pages by id like
// the store, and applies actions to its messages.
type FakeMessages struct {
	mu      sync.Mutex
	msgs    []*store.Message // any order
	details map[int64]Detail
	err     error
	acts    []string
	dead    DeadResult
}

// NewFakeMessages returns a FakeMessages holding msgs.
func NewFakeMessages(msgs ...*store.Message) *FakeMessages {
	return &FakeMessages{msgs: msgs, details: map[int64]Detail{}}
}

// SetError makes every call fail with err (nil: answer again).
func (f *FakeMessages) SetError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// SetDetail sets what MessageDetail adds to the message with d.Message.ID.
func (f *FakeMessages) SetDetail(d Detail) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.details[d.Message.ID] = d
}

// Acts lists the actions performed, as "action id".
func (f *FakeMessages) Acts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.acts)
}

func (f *FakeMessages) find(id int64) *store.Message {
	for _, m := range f.msgs {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// SearchMessages filters and pages the fake's messages.
func (f *FakeMessages) SearchMessages(_ context.Context, fl store.MessageFilter) (store.MessagePage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return store.MessagePage{}, f.err
	}
	if err := fl.Validate(); err != nil {
		return store.MessagePage{}, err
	}
	if fl.Limit == 0 {
		fl.Limit = 50
	}
	sorted := slices.Clone(f.msgs)
	slices.SortFunc(sorted, func(a, b *store.Message) int { return int(b.ID - a.ID) })
	page := store.MessagePage{Messages: []*store.Message{}}
	for _, m := range sorted {
		if (fl.Before > 0 && m.ID >= fl.Before) || (fl.ServerID != 0 && m.ServerID != fl.ServerID) ||
			(fl.Scope != "" && m.Scope != fl.Scope) || (fl.Status != "" && m.Status != fl.Status) || (fl.Held && !m.Held) ||
			(fl.From != "" && m.MailFrom != fl.From) || (fl.To != "" && m.RcptTo != fl.To) || (fl.Tag != "" && m.Tag != fl.Tag) ||
			(fl.Subject != "" && !strings.Contains(m.Subject, fl.Subject)) {
			continue
		}
		if len(page.Messages) == fl.Limit {
			page.Next = page.Messages[fl.Limit-1].ID
			break
		}
		c := *m
		page.Messages = append(page.Messages, &c)
	}
	return page, nil
}

// RequeueDead records the call and answers the result set by SetDead.
func (f *FakeMessages) RequeueDead(_ context.Context, limit int) (DeadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return DeadResult{}, f.err
	}
	f.acts = append(f.acts, fmt.Sprintf("requeue-dead %d", limit))
	return f.dead, nil
}

// SetDead sets what RequeueDead answers.
func (f *FakeMessages) SetDead(r DeadResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dead = r
}

// MessageDetail returns the message with the detail set by SetDetail.
func (f *FakeMessages) MessageDetail(_ context.Context, id int64) (Detail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Detail{}, f.err
	}
	m := f.find(id)
	if m == nil {
		return Detail{}, fmt.Errorf("message %d: %w", id, store.ErrNotFound)
	}
	d := f.details[id]
	c := *m
	d.Message = &c
	if d.Deliveries == nil {
		d.Deliveries = []*store.Delivery{}
	}
	if d.WebhookAttempts == nil {
		d.WebhookAttempts = []*store.WebhookAttempt{}
	}
	if d.PendingWebhooks == nil {
		d.PendingWebhooks = []*store.WebhookRequest{}
	}
	return d, nil
}

// Act applies a to the fake's message: release and retry make it Pending,
// hold makes it Held, cancel HoldCancelled, delete removes it.
func (f *FakeMessages) Act(_ context.Context, a Action, id int64) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Result{}, f.err
	}
	m := f.find(id)
	if m == nil {
		return Result{}, fmt.Errorf("message %d: %w", id, store.ErrNotFound)
	}
	f.acts = append(f.acts, fmt.Sprintf("%s %d", a, id))
	res := Result{Action: a, MessageID: id}
	switch a {
	case ActRelease:
		if !m.Held {
			return Result{}, fmt.Errorf("message %d: %w", id, store.ErrNotHeld)
		}
		m.Held, m.Status, res.QueuedID, res.Dispatched = false, store.StatusPending, id, true
	case ActRetry:
		m.Status, res.QueuedID, res.Dispatched = store.StatusPending, id, true
	case ActHold:
		m.Held, m.Status = true, store.StatusHeld
	case ActCancel:
		m.Held, m.Status = false, store.StatusHoldCancelled
	case ActDelete:
		f.msgs = slices.DeleteFunc(f.msgs, func(x *store.Message) bool { return x.ID == id })
	case ActUnsuppress:
		res.Unsuppressed = m.RcptTo
	default:
		return Result{}, fmt.Errorf("unknown action %q", a)
	}
	return res, nil
}
