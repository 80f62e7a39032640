// Package lease runs a function in at most one process at a time, by holding
// a Redis lease with a fencing token. The cron and requeuer roles use it.
//
// # Terms
//
// A term is one uninterrupted holding of the lease. It is identified by its
// fencing token, drawn when the term starts, and the holder's owner string
// (host:pid:random). The lease key holds "<token> <owner>":
//
//	acquire  one script: if lease:<name> exists, fail; else INCR
//	         lease:<name>:token (raised to at least the local unix ms, so
//	         tokens keep increasing even after Redis lost the counter) and
//	         SET lease:<name> "<token> <owner>" PX ttl
//	renew    one script: PEXPIRE only if the value is still this term's
//	release  one script: DEL only if the value is still this term's
//
// Because renew and release compare the whole value, an old term can neither
// extend nor delete a newer one, even of the same owner. Tokens strictly
// increase from one term to the next, so anything a holder writes elsewhere
// (SQL) can be guarded by "token >= the last token seen".
//
// # Trust window
//
// Redis decides who holds the lease; the local clock only decides when the
// holder stops trusting its last answer. After each successful acquire or
// renewal the holder computes
//
//	trustedUntil = attemptStarted + TTL - TTL/5
//
// anchored to when the request was sent, so a slow reply cannot stretch the
// term. The context given to the function is cancelled, with a cause, at the
// first of: the caller's context ending; a renewal reporting that the term
// is gone (ErrLost); trustedUntil passing without a newer successful renewal
// (ErrTrustExpired). A renewal that errors is retried at the next tick; if
// none succeeds in time the trust window ends the term. So a holder stops
// acting at least TTL/5 before Redis could give the lease to someone else,
// provided clocks advance at roughly the same rate.
//
// # Campaign
//
// Standbys try to acquire every RenewEvery. When the function returns, or its
// context is cancelled, the holder waits for it to return, releases the
// lease if it is still its own, waits RenewEvery and campaigns again. A
// holder that crashes without releasing is replaced once its key expires:
// within TTL + RenewEvery. The function must return promptly once its
// context is cancelled; the holder cannot step down before it does.
package lease
