// Package smtpserver is the smtp-server role: postal's inbound MX and
// authenticated submission service, built on emersion/go-smtp.
//
// # Contract
//
//   - Durable acceptance. A client is told 250 at the end of DATA (or BDAT
//     LAST) only after Intake.Submit returned nil, i.e. after the raw message,
//     one message row per recipient and their queued rows were committed in
//     SQL (intake dispatches them to Redis afterwards, so Redis is not on
//     the path of acceptance). When Options.Ready reports a dependency down
//     (postald asks only about the database), or Submit fails, the reply is 451 4.3.0 and nothing was stored; a
//     client that disconnects before the end of the data stores nothing.
//   - Recipients are classified per RCPT in Postal's order: a return-path
//     address (<server token>[+<message token>]@dns.return_path_domain or
//     @<custom_return_path_prefix>.<domain>) is a bounce for that server; a
//     route token at dns.route_domain is incoming mail for that route; after
//     AUTH every other address is outgoing mail of the credential's server;
//     name@domain with a route is incoming mail for it; a client address
//     matching an SMTP-IP credential then sends outgoing mail as that
//     credential's server; anything else is refused with 530 Authentication
//     required. Refusal texts are Postal's.
//   - Outgoing mail (a credential is in use) must carry a From header whose
//     every address is on a verified domain of the server (or the server has
//     a verified use_for_any domain); with allow_sender, a Sender header that
//     passes is enough. Otherwise the data is refused with 530.
//   - One raw body is stored per transaction and shared by its recipients'
//     messages. The server prepends a Received header, adds Message-ID when
//     the message has none, and adds X-Postal-MsgID carrying the token of the
//     transaction's first message; its other messages share the raw body and
//     are found from it through their common raw_message_id.
//   - Input limits (issue #14; docs/operations.md "Limits"): MAIL and RCPT
//     paths over the RFC 5321 lengths are refused with 501 before any lookup;
//     the postmaster (<postmaster>, or postmaster@ one of our host names or
//     verified domains without a route for it) is incoming mail for the route
//     of smtp_server.postmaster_address (550 5.1.1 without one); the header
//     block (daemon/mailheader decides where it ends) is checked against
//     max_header_bytes and max_header_lines as the data arrives (552 5.3.4);
//     message data held by all sessions is bounded by max_in_flight_size
//     (451 4.3.1), reserved before it is allocated and released however the
//     transaction ends.
//   - Limits: max_connections and max_connections_per_ip (421 4.7.0 before
//     the greeting), max_message_size (SIZE, 552 5.3.4), max_recipients
//     (452 4.5.3), max_commands (every command line read, NOOP, VRFY, HELP
//     and AUTH continuation lines included) and max_bad_commands per
//     connection (421 4.7.0 and the connection is closed), idle_timeout
//     between commands and data_timeout for one whole message body, DATA or
//     every BDAT chunk and the commands between them (421 4.4.2), and
//     auth_max_failures per client within auth_failure_window (454 4.7.0).
//   - Per-client limits (connections per client, AUTH failures) count a
//     client by its IPv4 address, or by the /64 of its IPv6 address (an
//     IPv4-mapped IPv6 address is its IPv4 address). An AUTH attempt is
//     counted as a failure before its password is checked, in the same
//     atomic step as the limit check, and taken back if it succeeds, so
//     parallel attempts get no more tries than the limit; with
//     Options.AuthFailures the count is shared by every smtp-server process
//     through Redis, and each process's own count still holds while Redis
//     is away.
//   - With smtp_server.proxy_protocol, only peers in
//     smtp_server.proxy_protocol_trusted (default loopback) may connect:
//     anyone else is told 554 5.7.1 and closed before the greeting, whether
//     or not it sends a header. A trusted peer must start with a PROXY v1
//     or v2 header (502 5.5.2 and closed otherwise); the client address it
//     names is the one every limit, SMTP-IP match and Received header uses.
//   - STARTTLS is offered when smtp_server.tls_enabled; Reload swaps the
//     certificate for new handshakes without touching open connections. With
//     TLS enabled, AUTH is offered only after STARTTLS except to loopback
//     clients; without it AUTH works in the clear, as in Postal.
//   - Run returns after draining: it stops accepting, lets every session
//     finish the message it is receiving (idle sessions get 421 at once)
//     within Options.ShutdownGrace, then closes what is left.
//
// # What go-smtp leaves to us, and its limits
//
// go-smtp hands the backend EHLO/HELO (a new session or a reset), RSET, MAIL,
// RCPT, DATA/BDAT and AUTH. NOOP, VRFY, HELP, QUIT and unknown verbs never
// reach the backend, so max_commands is counted below go-smtp: it sets the
// read deadline once before reading each command line, and the admitted
// connection counts those calls. go-smtp itself closes a connection after
// its fourth syntax error or unknown command. It moves the read deadline on
// before each BDAT command, so a timer ends a BDAT transfer at
// data_timeout; a chunk cut by the deadline is answered by go-smtp (a 554
// naming the timeout), then 421 4.4.2 and the connection closes. Lookups that
// repeat per message (credentials, SMTP-IP ranges, servers, domains, routes)
// are cached for Options.CacheTTL, so the per-message path makes no SQL query
// besides the intake's group commit.
package smtpserver
