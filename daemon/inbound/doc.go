// Package inbound handles the incoming stream: mail received for routes and
// return-path addresses. Bounces are linked to the messages they report on
// and classified hard or soft (BounceHandler); other incoming mail is
// inspected for spam and viruses once (through an Inspector, daemon/inspect)
// and routed in Postal's order by its route's mode to HTTP, SMTP and address
// endpoints, held or failed (Handler).
//
// Like every worker Handler it writes nothing durable itself: its outcomes
// carry their effects (bounce links, suppressions, bounces to senders, the
// inspection result, webhook requests), which the worker commits with them in
// one transaction, then dispatches.
package inbound
