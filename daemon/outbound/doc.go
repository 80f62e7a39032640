// Package outbound delivers outgoing mail: it is the worker's Handler for the
// outgoing stream. It also holds the webhook event payloads and the Events
// fan-out that package inbound uses too (until package webhook owns them).
//
// Contract of Processor.Handle, for a batch of claimed queued messages bound
// for one destination domain: it returns exactly one store.Outcome per row, in
// order, and never fails as a whole. It writes nothing durable: everything a
// delivery causes travels with its outcome as store.Effects, which the worker
// commits in the outcome's transaction and dispatches after the commit. For each message, in Postal's order
// (MessageDequeuer::SingleMessageProcessor then OutgoingMessageProcessor):
//
//  0. a sent-journal record for this very row (Options.Journal: an earlier
//     claim got the receiver's 250 and died before its outcome committed)
//     -> Sent with the recorded delivery, not sent again;
//  1. message gone -> the queued row is dropped;
//  2. server suspended -> Held;
//  3. attempts already at postal.default_maximum_delivery_attempts -> HardFail;
//  4. raw message gone (retention), domain deleted, no recipient -> HardFail;
//  5. unless the row was released by hand (store.ReleaseHeld): credential set
//     to hold, recipient on the suppression list -> Held;
//  6. send limit reached (counted per server over the last hour) -> Held,
//     with the queued row kept and due when the oldest counted message
//     leaves the window (store.HoldUntil), so it goes out by itself then;
//  7. unless released by hand: server in development mode -> Held;
//  8. otherwise the message is rewritten and sent; a 250 is recorded in the
//     sent-journal at once (one Redis SET; a failure is logged and only
//     widens the duplicate window back to the whole batch).
//
// Held outcomes set the hold expiry to now + default_maximum_hold_expiry_days
// and drop the queued row. Postal holds (rather than fails) a suppressed
// recipient, with the details "Recipient (x) is on the suppression list
// (reason: y)", so `postalctl message release` can still send it.
//
// Rewriting: the envelope sender is Postal's return path,
// <server token>@<dns.return_path_domain>, or @<custom_return_path_prefix>.<domain>
// when the domain's return-path check is OK, with the message token as a
// +tag (<server token>+<message token>@...) so a bounce names its message;
// bounces (Bounce=true) use the null sender. Resent-Sender carries the
// return path without the tag when
// postal.use_resent_sender_header (and is covered by the signature). The
// message is signed with the domain's DKIM key (relaxed/relaxed, Postal's
// header list, selector <dns.dkim_identifier>-<DKIMIdentifierString>); the
// signature is computed once per raw body and return path, so the recipients
// of one submission share it. X-Postal-MsgID: <message token> is put on top,
// outside the signature, replacing any earlier one, so a returned DSN names
// the exact message it reports on. An optional Tracker rewrites the message
// (open and click tracking) before signing.
//
// Destination: postal.smtp_relays when set; otherwise the MX hosts of the
// domain in preference order (its A/AAAA records when it has no MX), each
// resolved through the resolver, so dns.nameservers governs every lookup. A
// null MX or NXDOMAIN hard-fails; a temporary DNS failure soft-fails. MX and
// address answers are cached for Options.MXCacheTTL. A host that cannot be
// reached (connect, greeting, EHLO or STARTTLS failure) is skipped for the
// rest of the batch and the next one is tried within the same attempt.
// servers.require_tls selects STARTTLS-required, otherwise TLS is
// opportunistic; certificates are not verified (as Postal's Auto mode; Postal
// verifies relays configured with STARTTLS or TLS, which one client here
// cannot). With postal.use_ip_pools the source address is bound from the
// message's IP pool (server rules, then organisation rules, then the server's
// pool, then the default pool; weighted by priority).
//
// Outcomes: a 2xx reply is Sent; 4xx, timeouts and connection failures are
// SoftFail with a retry at now + 5 min x 1.3^attempts, until the last allowed
// attempt, which hard-fails; 5xx is HardFail. Effects of the outcome: every
// hard delivery failure of an outgoing message suppresses the recipient for
// default_suppression_list_automatic_removal_days and, unless the message is
// itself a bounce or has no envelope sender, carries an RFC 3464 DSN to the
// sender (a new outgoing message, stored and queued with the outcome; the
// delivery's details then name it). A manual send removes the recipient's
// suppression. Every delivery row (Sent, SoftFail, HardFail, Held) fires
// Postal's webhook event (MessageSent, MessageDelayed, MessageDeliveryFailed,
// MessageHeld): one webhook_requests row per enabled webhook subscribed to
// it. With a send limit, the server's volume after the message is reported
// (store.SendLimit), and SendLimitApproaching / SendLimitExceeded fire once
// per crossing of 90 % / 100 %.
//
// Because effects commit with the outcome, a batch whose outcome is refused
// (the worker lost its lock) or never recorded (it died) leaves no
// suppression, bounce or webhook request behind; the retry that follows
// creates them once. Only the SMTP transaction itself can be repeated.
//
// Server, domain, credential, webhook and IP pool rows are cached for
// Options.CacheTTL (a change takes effect within that time); parsed DKIM keys
// are cached per domain until the key changes.
package outbound
