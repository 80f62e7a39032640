package inbound

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/untrusted"
)

// MaxOriginalAttached bounds the copy of the failed message a bounce
// carries; a larger one is cut (its headers stay).
const MaxOriginalAttached = 10 << 20

// bounceMessage builds Postal's bounce for failed incoming mail: a new
// outgoing message to the original MAIL FROM, with a null envelope sender,
// from "Mail Delivery Service <route address>", explaining the failure and
// carrying the original as "Original Message.eml". It reports false when
// the message cannot be built.
func (h *Handler) bounceMessage(w *work, reason string, now time.Time) (store.Submission, bool) {
	m := w.m
	from := "postmaster@" + h.o.WebHostname
	domain := ""
	if w.route != nil && w.route.Domain != "" {
		from, domain = w.route.Address(), w.route.Domain
	}
	postmaster := "postmaster@" + h.o.WebHostname
	if domain != "" {
		postmaster = "postmaster@" + domain
	}
	rp := h.o.ReturnPathDomain
	if rp == "" {
		rp = h.o.WebHostname
	}
	msgID := store.RandomToken(24) + "@" + rp
	subject := "Mail Delivery Failed (" + untrusted.Text(m.Subject, 200) + ")"

	var hdr mail.Header
	hdr.SetDate(now)
	hdr.SetAddressList("From", []*mail.Address{{Name: "Mail Delivery Service", Address: from}})
	hdr.SetAddressList("To", []*mail.Address{{Address: m.MailFrom}})
	hdr.SetSubject(subject)
	hdr.SetMessageID(msgID)
	hdr.Set("Auto-Submitted", "auto-replied")

	var text strings.Builder
	fmt.Fprintf(&text, "Your message to %s could not be delivered.\r\n\r\n", untrusted.Text(m.RcptTo, 320))
	fmt.Fprintf(&text, "Reason: %s\r\n\r\n", untrusted.Text(reason, 500))
	text.WriteString("A copy of your message is attached. If you need help, write to " + postmaster +
		" and quote the details below.\r\n\r\n")
	fmt.Fprintf(&text, "Message Token: %s@%s\r\n", m.Token, w.server.Token)
	fmt.Fprintf(&text, "Orig Message ID: %s\r\n", untrusted.Text(m.MessageID, 998))
	fmt.Fprintf(&text, "Mail from: %s\r\n", untrusted.Text(m.MailFrom, 320))
	fmt.Fprintf(&text, "Rcpt To: %s\r\n", untrusted.Text(m.RcptTo, 320))

	var buf bytes.Buffer
	mw, err := mail.CreateWriter(&buf, hdr)
	if err == nil {
		err = writeBounceParts(mw, text.String(), w.raw)
	}
	if err != nil {
		h.log.Error("building bounce failed", "err", err, "message_id", m.ID)
		return store.Submission{}, false
	}
	_, rcptDomain, _ := strings.Cut(m.MailFrom, "@")
	return store.Submission{Raw: buf.Bytes(), Messages: []store.NewMessage{{
		ServerID:    m.ServerID,
		Scope:       store.ScopeOutgoing,
		RcptTo:      m.MailFrom,
		Subject:     subject,
		MessageID:   "<" + msgID + ">",
		Bounce:      true,
		BounceForID: m.ID,
		DomainID:    m.DomainID,
		Queue:       true,
		QueueDomain: strings.ToLower(rcptDomain),
	}}}, true
}

func writeBounceParts(mw *mail.Writer, text string, raw []byte) error {
	var th mail.InlineHeader
	th.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	tw, err := mw.CreateSingleInline(th)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(tw, text); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if len(raw) > MaxOriginalAttached {
		raw = raw[:MaxOriginalAttached]
	}
	var ah mail.AttachmentHeader
	ah.SetContentType("message/rfc822", map[string]string{"name": "Original Message.eml"})
	ah.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "Original Message.eml"}))
	aw, err := mw.CreateAttachment(ah)
	if err != nil {
		return err
	}
	if _, err := aw.Write(raw); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		return err
	}
	return mw.Close()
}
