// Package queue is the dispatch spine: Redis Streams that tell workers which
// SQL rows to work on, a retry sorted set, an inflight hash and a dead-letter
// stream. SQL is the system of record; everything here can be lost and
// rebuilt from SQL.
//
// # Keys
//
// All keys live under one hash-tagged prefix (see redisconn.Keys), so every
// Lua script below may touch several of them, also under Cluster:
//
//	stream:<kind>  one stream per Kind, consumer group Options.Group ("workers");
//	               entry fields: id (SQL row id), domain (destination, may be "")
//	retry          sorted set; score = due time in unix ms;
//	               member = "<kind>|<id>|<domain>"
//	inflight       hash; field "<kind>:<id>" = unix ms of the last (re)dispatch,
//	               present while the id is in a stream, pending or in retry
//	dead           stream of entries given up on: kind, id, domain, count,
//	               reason, time (unix ms); capped near Options.DeadMaxLen
//	sent:<kind>:<id>  sent-journal record (Journal): the handler's opaque
//	               note that the row's work passed its point of no return,
//	               with a TTL; deleted once the outcome commits
//
// # Life of an entry
//
//	Enqueue   XADD stream + HSET inflight, in one MULTI/EXEC (one round trip
//	          for any number of jobs).
//	Read      XREADGROUP ">" with a bounded block; the entry is now pending
//	          for that consumer (delivery count 1).
//	Ack       XACK + XDEL + HDEL inflight, one Lua script for many entries.
//	Retry     XACK + XDEL + ZADD retry, one Lua script; inflight kept.
//	MoveDue   one Lua script: ZRANGEBYSCORE due members, XADD each to its
//	          stream, ZREM it. A member is moved by exactly one call even when
//	          several run at once, because a script runs alone.
//	Claim     one Lua script: XPENDING IDLE >= minIdle, then for each entry
//	          either XCLAIM it for the caller (count + 1) or, when it has
//	          already been delivered MaxDeliveries times, copy it to dead,
//	          XACK + XDEL it and HDEL its inflight field. Dead entries are
//	          returned so the caller marks the SQL row failed.
//
// # Guarantees
//
//   - At least once. An entry leaves its stream only by Ack, Retry or being
//     declared dead; a consumer that dies keeps its entries pending until
//     another consumer's Claim takes them after minIdle.
//   - Acked entries are deleted, so a stream holds only undelivered and
//     pending entries: Lag = Length - Pending.
//   - Read and Claim recover by themselves when the stream or the group has
//     vanished (Redis flushed or restarted without persistence): on NOGROUP
//     they re-create every group at "0" and retry once. An entry added while
//     the group was missing is therefore still delivered.
//   - Missing tells reconciliation which SQL ids have no inflight field, i.e.
//     are in no stream and not in retry; it re-enqueues them. Redis must run
//     with maxmemory-policy noeviction: an evicted stream whose inflight
//     fields survive would hide its ids from reconciliation.
//
// # The at-least-once window and duplicates
//
// Between Read and Ack the SQL row is worked on. If the worker dies after
// its outcome committed in SQL but before Ack, the entry is claimed again
// after minIdle. Reconciliation may also add an entry for an id that is
// already in a stream (it raced an Ack, or Redis came back from an old
// snapshot). Either way a duplicate entry means only "look at row <id>":
// the worker's SQL compare-and-set on the row's lock finds it locked by
// someone else, already done or rescheduled, and the worker acks the entry
// without doing anything. The one repeated side effect is a message sent
// by a worker that died before its outcome committed: it is sent again by
// whoever takes the row over, unless the sent-journal (Journal) recorded
// the receiver's 250, which leaves only the message on the wire at the
// death (SMTP's own window).
//
// # Metrics
//
// With Options.Registerer set, New registers postal_queue_* counters on it;
// nothing is registered globally.
package queue
