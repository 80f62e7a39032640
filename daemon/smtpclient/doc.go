// Package smtpclient delivers messages to remote SMTP servers (MX hosts or
// configured relays) over pooled connections and classifies every outcome.
//
// Contract:
//
//   - [Client.Send] always returns a non-nil [*Result]. On failure the error is
//     an [*Error] whose Permanent field says whether a retry can help: 5xx
//     replies and local refusals (message larger than the server's SIZE,
//     malformed or non-ASCII addresses a server cannot take) are permanent;
//     4xx replies, timeouts, refused or reset connections, TLS failures,
//     unexpected EOF and cancellation are temporary.
//   - At most [Options.MaxConnsPerHost] connections are open per
//     [Destination.Key]; further callers wait, bounded by their context.
//   - A connection goes back to the pool only when the last transaction left
//     it in step with the server; every transaction on a reused connection
//     starts with RSET. Pooled connections that the server closed while they
//     were idle are discarded and replaced transparently, before any part of
//     the message has been accepted.
//   - Message bodies and addresses are never logged.
//   - A server's reply text reaches callers (Result, Error, RcptError) only as
//     valid UTF-8 without NUL or other control characters but tab and the
//     line feeds joining its lines, at most [MaxReplyText] bytes: bytes that
//     are not UTF-8 are read as ISO-8859-1 (package untrusted), so a hostile
//     or legacy reply cannot break the SQL, logs, DSNs or webhooks it feeds.
//
// Implementation: the session is written directly over bufio instead of on
// go-smtp's Client. go-smtp v0.25 sends each command and waits for its reply
// (it has no PIPELINING support), costing 3+N round trips per message on a
// reused connection; this client sends RSET, MAIL, every RCPT and DATA in one
// write and the body in a second, so a message costs two round trips whatever
// its number of recipients. Owning the session also lets a pooled connection
// keep its buffers, so a delivery over a warm connection allocates little.
//
// Data is sent with DATA (CHUNKING/BDAT is not used): line endings are
// normalised to CRLF (a bare LF or a bare CR becomes CRLF, which also rules out
// SMTP smuggling through ambiguous end-of-data sequences) and lines starting
// with '.' are dot-stuffed, in one pass into the connection's buffered writer.
package smtpclient
