// Package worker is the worker role: it consumes the dispatch streams
// (package queue), claims the SQL rows the entries name, hands them to a
// Handler per stream kind in batches for one destination, records the
// outcomes in SQL and only then acknowledges the entries.
//
// # Contract
//
//   - An entry is acknowledged (XACK) only after the outcome of its row is
//     committed in SQL, or after the worker has established that the entry
//     carries no work (see below). A worker that dies at any point leaves its
//     entries pending; after Config.VisibilityTimeout another worker's
//     reclaim takes them over.
//   - A row is worked on only by the worker that holds its SQL lock, taken
//     by compare-and-set (store.ClaimQueued) until now + VisibilityTimeout,
//     under a lock owner unique to that claim ("<consumer>:<instance>:<n>").
//     The claim hands the Handler its rows loaded (store.QueuedMessage's
//     Loaded: message, body, manual flag, suppression), read with the claim.
//     Outcomes are recorded guarded by that owner, so a worker that lost its
//     lock cannot overwrite a newer owner's result.
//   - Batching: after claiming the rows of a read, the worker groups them by
//     destination domain and, with postal.batch_queued_messages, tops each
//     group up to worker.batch_size with other ready rows for that domain
//     (store.ClaimQueuedForDomain), then splits each group by IP address, so
//     one Handler call is one destination over one connection. Those extra
//     rows' own entries later find them gone or locked and are dropped.
//   - Concurrency: worker.threads consumers per kind, each a named stream
//     consumer ("<owner>-<kind>-<n>"). A consumer keeps at most
//     Options.MaxInFlight of its own entries in flight and runs the Handler
//     calls of different destinations concurrently; outcomes of all
//     consumers of a kind are recorded by one completer, as many per SQL
//     transaction as have finished meanwhile (group commit).
//
// # Entries whose row cannot be claimed
//
// ClaimQueued leaves out rows that are gone, locked by someone else or not
// due. The worker looks those rows up (store.QueuedByIDs) and decides per
// entry:
//
//	gone                      ack: the work is finished (or failed) already
//	not due (retry_after>now) move the entry to the retry set due at
//	                          retry_after (queue.Retry): it is the work's
//	                          only dispatch in the normal case, so dropping
//	                          it would leave the row to reconciliation
//	locked, first delivery    ack: another worker took the row (batching or
//	                          a duplicate entry) and records its outcome; if
//	                          that worker dies, its lock expires and
//	                          reconciliation re-dispatches the row
//	locked, redelivered       move the entry to the retry set due when the
//	                          lock expires: this is a reclaimed entry of a
//	                          dead worker whose lock has not quite expired
//	                          (the lock is taken just after the read)
//	due and unlocked (a race) move to the retry set, due now
//
// The requeuer's reconciliation (every requeuer.reconcile_interval) is the
// safety net under all of these: any due, unlocked row without an inflight
// marker is dispatched again. A duplicate entry is therefore always harmless:
// it costs a lookup and an ack.
//
// # Outcomes
//
// The Handler returns one store.Outcome per row, built from the row, with its
// effects (suppressions, bounces, bounce links, webhook requests, send-limit
// marks). The completer commits outcomes and effects in one transaction
// (store.CommitOutcomes); if that transaction fails, the store records them
// one by one, and an outcome the database still refuses is recorded as
// failed with the reason (a Sent message stays Sent and is never sent
// again). After the commit the new work (bounce messages, webhook requests)
// goes to Options.Dispatcher, the intake's dispatcher in postald; work it
// does not dispatch is found by the requeuer's reconciliation. Done outcomes delete the
// row and the entry is acked; Retry outcomes reschedule the row in SQL and
// then move the entry to the retry set at RetryAfter (queue.Retry; for a
// topped-up row, which has no entry of its own here, queue.Schedule). An
// outcome refused because the lock was lost is acked without effect. If the
// Handler panics, returns the wrong number of outcomes or is abandoned at
// shutdown, nothing is recorded and nothing acked: the entries are reclaimed
// after the visibility timeout, and after worker.max_deliveries deliveries an
// entry goes to the dead stream and its message is marked HardFail with a
// reason (store.FailQueued) that postalctl shows.
//
// # The at-least-once window
//
// The Handler's SMTP transaction and the SQL commit of its outcome are not
// atomic. If the worker dies after the Handler delivered a message but before
// its outcome committed, whoever takes the work over redoes it; its effects
// are not repeated (none was written). A Handler narrows this window with a
// sent-journal (Options.Journals; package queue's Journal): it records each
// message the receiver accepted at once, and the next claim of the row turns
// the record into the outcome instead of sending again (package outbound).
// The worker deletes a row's record once the row's Sent outcome committed,
// and keeps it when the outcome was refused (the lock was lost), for the
// row's new owner. What remains is SMTP's own window: a message on the wire
// when the worker died.
//
// # Dead workers
//
// With Options.Liveness, every Options.ReapEvery (5 s) a worker lists the
// consumers of each stream it works; a consumer of another process that has
// pending entries, has been idle for ReapMinIdle and whose process has no
// heartbeat (package status; the TTL is 20 s in postald) is dead. The worker
// then releases the SQL locks of that process (lock owners start with
// "<process>-"), dispatches the released rows that have no stream entry
// (taken by batching), and its consumers take the dead consumer's entries
// over (queue.ClaimFrom), so the work is redone within about 30 s of the
// death instead of after the visibility timeout. A live process whose
// heartbeat cannot be written for the TTL (it cannot reach Redis) may lose
// its work the same way; its later outcomes are refused by the lock check. Work that is merely slow is not in
// this window: while a batch is being handled, the worker extends its SQL
// locks and touches its stream entries every third of the visibility
// timeout, so no other worker reclaims it. Only a worker that stops
// renewing (it died, or cannot reach the database or Redis for a whole
// visibility timeout) lets its work be taken over. Within one process a
// reclaim that returns an entry the process is still working on is ignored
// (the work in progress acks it).
//
// # Shutdown
//
// When Run's context ends, consumers stop reading, in-flight Handler calls
// get Options.Grace (default 30 s) to finish, their outcomes are recorded
// and acked, and Run returns. A Handler still running after the grace period
// has its context cancelled and is abandoned (its goroutine ends when the
// Handler returns); its rows stay locked until the visibility timeout and are
// then reclaimed.
package worker
