// Package inbound handles the incoming stream: mail received for routes and
// return-path addresses. It links received bounces to the messages they
// report on (BounceHandler); it inspects other incoming mail for spam and
// viruses once (through an Inspector, daemon/inspect) and routes it in
// Postal's order to the route's HTTP, SMTP or address endpoint, holds it or
// fails it (Handler).
//
// Like every worker Handler it writes nothing durable itself: its outcomes
// carry their effects (bounce links, bounces to senders, the inspection
// result, webhook requests), which the worker commits with them in one
// transaction, then dispatches.
package inbound
