package outbound

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/postalgo/postal/daemon/smtpclient"
	"github.com/postalgo/postal/daemon/store"
)

// Forwarded is the result of Forward: sent, or failed (permanently or not),
// with the delivery row to record (its Status left for the caller).
type Forwarded struct {
	Sent      bool
	Permanent bool
	Delivery  store.NewDelivery
}

// Forward sends raw as it is (no DKIM signature, no header rewriting) with
// the envelope from -> rcpt, over the processor's pooled SMTP client. With
// dest set (an SMTP endpoint) it goes there with dest's TLS mode; without,
// it goes where outgoing mail for rcpt's domain goes (smtp_relays, else the
// domain's MX hosts, as Deliver resolves them), trying the next host when
// one cannot be reached. SMTP replies map as for outgoing mail: 5xx is
// permanent, anything else temporary.
func (p *Processor) Forward(ctx context.Context, dest *smtpclient.Destination, from, rcpt string, raw []byte) Forwarded {
	now := p.o.Now()
	var dests []smtpclient.Destination
	var names []string
	if dest != nil {
		dests = []smtpclient.Destination{*dest}
		names = []string{dest.Key()}
	} else {
		_, domain, _ := strings.Cut(rcpt, "@")
		domain = strings.ToLower(domain)
		r := p.resolve(ctx, domain, now)
		if len(r.endpoints) == 0 {
			return Forwarded{Permanent: r.permanent, Delivery: store.NewDelivery{Details: r.details, Output: r.output}}
		}
		for _, ep := range r.endpoints {
			d := smtpclient.Destination{Host: ep.host, Port: ep.port, SSLMode: ep.mode}
			if ep.ip != nil {
				d.Host, d.ServerName = ep.ip.String(), ep.host
			}
			dests = append(dests, d)
			names = append(names, ep.String())
		}
	}
	env := smtpclient.Envelope{From: from, To: []string{rcpt}}
	var errs []string
	for i, d := range dests {
		res, err := p.client.Send(ctx, d, env, raw)
		if err == nil {
			return Forwarded{Sent: true, Delivery: store.NewDelivery{
				Details: fmt.Sprintf("Message for %s accepted by %s", rcpt, names[i]),
				Output:  reply(res.Code, res.Enhanced, res.Message), SentWithSSL: res.TLS, Time: seconds(res.Duration)}}
		}
		var se *smtpclient.Error
		if !errors.As(err, &se) {
			se = &smtpclient.Error{Stage: smtpclient.StageData, Err: err}
		}
		if connectionStage(se.Stage) && ctx.Err() == nil && i < len(dests)-1 {
			errs = append(errs, names[i]+": "+se.Error())
			continue
		}
		out := reply(se.Code, se.Enhanced, se.Message)
		if out == "" {
			out = se.Error()
		}
		d2 := store.NewDelivery{Output: out, SentWithSSL: res != nil && res.TLS}
		if res != nil {
			d2.Time = seconds(res.Duration)
		}
		if connectionStage(se.Stage) && len(dests) > 1 {
			d2.Output = strings.Join(append(errs, names[i]+": "+se.Error()), ", ")
		}
		if se.Permanent {
			d2.Details = fmt.Sprintf("Permanent SMTP delivery error when sending to %s", names[i])
			return Forwarded{Permanent: true, Delivery: d2}
		}
		d2.Details = fmt.Sprintf("Temporary SMTP delivery error when sending to %s", names[i])
		return Forwarded{Delivery: d2}
	}
	return Forwarded{Delivery: store.NewDelivery{Details: "No SMTP servers were available for " + rcpt + "."}}
}
