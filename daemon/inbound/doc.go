// Package inbound handles the incoming stream: mail received for routes and
// return-path addresses. Today it links received bounces to the messages
// they report on (BounceHandler); inbound routing to endpoints comes later.
//
// Like every worker Handler it writes nothing durable itself: its outcomes
// carry their effects (bounce links, webhook requests), which the worker
// commits with them in one transaction, then dispatches.
package inbound
