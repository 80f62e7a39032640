package dsn

import "strings"

// Class is how final a bounce is for its recipient's address.
type Class string

const (
	// Hard: the address does not exist or is disabled; sending to it
	// again will fail the same way.
	Hard Class = "hard"
	// Soft: the failure is about this message, the sender or a passing
	// state of the mailbox (full, over quota, blocked as spam, delayed).
	Soft Class = "soft"
)

// recipientGone are phrases (lower case) that say the mailbox does not
// exist, for reports that give only a basic reply code such as 550.
var recipientGone = []string{
	"user unknown", "unknown user", "no such user", "no such mailbox", "no mailbox here", "mailbox not found",
	"mailbox unavailable", "does not exist", "doesn't exist", "user doesn't have", "address not found",
	"recipient not found", "recipientnotfound", "unknown recipient", "invalid recipient",
	"invalid mailbox", "not a valid mailbox", "couldn't be found", "account has been disabled",
	"account is disabled", "user not found",
}

// Classify says whether r is a hard or a soft bounce, by this table (the
// most specific code wins: the Status field unless it is a bare X.0.0, then
// an enhanced code in the diagnostic text, then its basic reply code):
//
//	Action delayed, or 4.x.x / 4xx        soft
//	5.1.x (bad mailbox, domain, syntax,   hard, except 5.1.7 and 5.1.8
//	       moved, null MX)                (the sender's address): soft
//	5.2.1 mailbox disabled                hard
//	5.2.x other (5.2.2 mailbox full,      soft
//	       5.2.3 message too big)
//	5.4.4 unable to route (no such domain) hard
//	5.3.x, 5.4.x other, 5.5.x, 5.6.x,     soft: the system, the protocol, the
//	5.7.x                                 content or policy (spam blocks), not
//	                                      the address
//	5.0.0 or no enhanced code:            hard for 551 and 553, and for 550 or
//	                                      554 whose text says the mailbox does
//	                                      not exist ("user unknown", ...);
//	                                      otherwise soft
//
// Anything else (no code at all, 2.x.x) is soft: an address is suppressed
// only when the report says it is gone.
func Classify(r Recipient) Class {
	if strings.EqualFold(r.Action, ActionDelayed) {
		return Soft
	}
	status := r.Status
	if !statusRE.MatchString(status) || strings.HasSuffix(status, ".0.0") {
		if m := enhancedRE.FindStringSubmatch(r.DiagnosticCode); m != nil && !strings.HasSuffix(m[1], ".0.0") {
			status = m[1]
		}
	}
	if statusRE.MatchString(status) && !strings.HasSuffix(status, ".0.0") {
		return classifyEnhanced(status)
	}
	if strings.HasPrefix(status, "4") {
		return Soft
	}
	code := ""
	if m := basicRE.FindStringSubmatch(r.DiagnosticCode); m != nil {
		code = m[1]
	}
	switch code {
	case "551", "553":
		return Hard
	case "550", "554":
		diag := strings.ToLower(r.DiagnosticCode)
		for _, p := range recipientGone {
			if strings.Contains(diag, p) {
				return Hard
			}
		}
	}
	return Soft
}

// classifyEnhanced applies the table to an enhanced status other than
// X.0.0.
func classifyEnhanced(status string) Class {
	class, rest, _ := strings.Cut(status, ".")
	if class != "5" {
		return Soft
	}
	subject, detail, _ := strings.Cut(rest, ".")
	switch subject {
	case "1":
		if detail == "7" || detail == "8" {
			return Soft
		}
		return Hard
	case "2":
		if detail == "1" {
			return Hard
		}
	case "4":
		if detail == "4" {
			return Hard
		}
	}
	return Soft
}
