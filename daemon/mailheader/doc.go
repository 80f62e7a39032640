// Package mailheader reads the header block at the start of an Internet
// message (RFC 5322) in one linear pass, and checks it against size limits
// while the message is still arriving. It is a leaf: bytes in, values out.
//
// # Where the header block ends
//
// A line ends at LF; a CR just before the LF belongs to the line end. A
// final line without LF is still a line. The header block is the run of
// lines, from the first, each of which is
//
//   - a field line: a name of printable US-ASCII other than the colon,
//     optionally followed by spaces or tabs (RFC 5322 obsolete syntax), then
//     a colon; or
//   - a continuation line: one starting with a space or a tab, after a
//     field line or another continuation line.
//
// The block ends at the first line that is neither:
//
//   - an empty line (LF or CRLF alone) is the separator: it belongs to
//     neither part, and the body starts after it (RFC 5322 section 2.1);
//   - any other line (text without a colon, a continuation line before any
//     field, a line starting with CR or a control character, or a final
//     partial line whose colon has not been seen) is the first line of the
//     body: there is no separator, and nothing is dropped.
//
// Both the SMTP server (which inserts its fields at Header.End) and
// outbound (which strips X-Postal-MsgID and signs with DKIM) use this
// package, so they always agree on which bytes are header.
//
// Parse and Scanner run the same state machine, so a Scanner fed a message
// in any pieces reports exactly the End, BodyStart and Lines that Parse
// reports for the whole message, and exceeds Limits exactly when Parse's
// End or Lines exceed them.
package mailheader
