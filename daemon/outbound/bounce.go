package outbound

import (
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/dsn"
	"github.com/postalgo/postal/daemon/store"
)

// bounce builds the DSN of a hard-failed message as a new outgoing message
// from the same server to the original envelope sender, for the outcome's
// effects. The DSN's own delivery is a bounce (null sender, never bounced
// again). It reports false when no DSN could be built.
func (p *Processor) bounce(j *job, now time.Time) (store.Submission, bool) {
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
			return store.Submission{}, false
		}
	}
	_, domain, _ := strings.Cut(m.MailFrom, "@")
	return store.Submission{Raw: raw, Messages: []store.NewMessage{{
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
	}}}, true
}
