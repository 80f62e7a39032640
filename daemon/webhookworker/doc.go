// Package webhookworker consumes the `webhooks` stream: it sends each
// stored webhook request (daemon/store webhook_requests) to its receiver,
// logs every attempt and deletes, reschedules or gives up the request, as
// Postal's webhook worker does but pushed through Redis instead of polled.
//
// # Life of an entry
//
//  1. Fetch. One consumer reads at most as many entries as it has free
//     slots (Options.MaxInFlight bounds the requests held in memory,
//     sending or waiting) and claims their rows in SQL by compare-and-set
//     (locked_by, locked_until = now + visibility timeout). An entry whose
//     row is gone or locked by a live claim is acked without work; one
//     whose row is not due yet goes back to the retry set at its due time.
//  2. Execute. Requests are grouped by destination (scheme://host:port of
//     the URL). At most Options.PerDestination requests to one destination
//     are on the wire at once; the rest wait in memory. A destination is
//     slow when its last attempt timed out or failed to connect, or all of
//     its slots have been busy longer than Options.SlowAfter. Work for a
//     slow destination beyond one slot's worth of waiting is parked: its
//     row is unlocked and made due Options.ParkDelay later (plus one
//     attempt's average time per PerDestination requests already parked,
//     so the backlog of a slow receiver returns at the pace its slots can
//     take it), its entry moved to the retry set, no attempt counted. So a receiver that hangs holds
//     at most 2 x PerDestination slots, and other receivers and mail
//     delivery (a separate worker) are not delayed by it.
//  3. Complete. Results are recorded in batches by one completer: one SQL
//     transaction logs each attempt (webhook_attempts) and deletes the
//     request (2xx, or the last attempt failed) or reschedules it
//     (retry_after = now + 2, 3, 6, 10, 15 minutes after attempts 1-5),
//     guarded by the lock owner. Only after that commit are the entries
//     acked, or moved to the retry set for a rescheduled request. The
//     commit does not wait for the disk (store.RecordWebhookAttempts): a
//     machine crash that undoes it leaves the request locked until the
//     visibility timeout, and it is then sent again with the same uuid.
//
// # Failures
//
// A worker that dies leaves its entries pending; after the visibility
// timeout another worker reclaims them and, the row lock having expired,
// sends again: delivery is at least once, and the request's uuid is the
// same on every attempt so receivers can drop duplicates. An entry handed
// out more than worker.max_deliveries times is dead-lettered and its
// request abandoned with a logged "dead" attempt. If SQL fails while
// recording, entries stay pending and are reclaimed the same way.
//
// Time comes from Options.Now (retry schedules are tested without
// sleeping); the HTTP attempt itself is webhook.Client's.
package webhookworker
