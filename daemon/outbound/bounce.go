package outbound

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/dsn"
	"github.com/postalgo/postal/daemon/store"
)

// sendBounce builds the DSN of a hard-failed message and submits it as a new
// outgoing message from the same server to the original envelope sender.
// The DSN's own delivery is a bounce (null sender, never bounced again).
func (p *Processor) sendBounce(ctx context.Context, j *job, now time.Time) {
	m := j.msg
	rp := p.returnPathDomain()
	daemon := "MAILER-DAEMON@" + rp
	reporting := p.o.DNS.HeloHostname
	if reporting == "" {
		reporting = p.o.Postal.SMTPHostname
	}
	if reporting == "" {
		reporting = rp
	}
	sent := j.sentAs
	if sent == nil {
		sent = j.raw
	}
	params := dsn.Params{
		ReportingMTA: reporting,
		From:         "Mail Delivery System <" + daemon + ">",
		To:           m.MailFrom,
		Arrival:      m.Timestamp,
		Date:         now,
		MessageID:    store.RandomToken(16) + "@" + rp,
		Recipients: []dsn.Recipient{{
			Address:        m.RcptTo,
			Action:         dsn.ActionFailed,
			Status:         j.fail.status,
			DiagnosticCode: j.fail.diag,
			RemoteMTA:      j.fail.remoteMTA,
			LastAttempt:    now,
		}},
		OriginalHeaders:   sent[:headerEnd(sent)],
		OriginalMessageID: m.MessageID,
	}
	raw, err := dsn.Build(params)
	if err != nil {
		// A malformed original Message-ID or header block must not stop
		// the sender from learning about the failure.
		params.OriginalMessageID, params.OriginalHeaders = "", nil
		if raw, err = dsn.Build(params); err != nil {
			p.log.Error("building bounce failed", "err", err, "message_id", m.ID)
			return
		}
	}
	_, domain, _ := strings.Cut(m.MailFrom, "@")
	acc, err := p.o.Bounces.Submit(ctx, store.Submission{Raw: raw, Messages: []store.NewMessage{{
		ServerID:    m.ServerID,
		Scope:       store.ScopeOutgoing,
		RcptTo:      m.MailFrom,
		MailFrom:    daemon,
		Subject:     dsn.SubjectFailed,
		MessageID:   "<" + params.MessageID + ">",
		Bounce:      true,
		BounceForID: m.ID,
		Queue:       true,
		QueueDomain: strings.ToLower(domain),
	}}})
	if err != nil {
		p.log.Error("submitting bounce failed", "err", err, "message_id", m.ID)
		return
	}
	p.m.bounces.Inc()
	if len(acc) > 0 {
		j.out.Delivery.Details += " Bounce sent to sender (see message <msg:" + strconv.FormatInt(acc[0].MessageID, 10) + ">)."
	}
}
