// Package store is the only home of SQL in postal. It owns the record types
// (organisations, servers, domains, credentials, messages, deliveries, queued
// messages, ...), the schema migrations, and every query and state transition.
//
// Guarantees:
//   - The same schema and queries run on SQLite (modernc.org/sqlite, WAL,
//     synchronous=FULL) and PostgreSQL (pgx); dialect differences live in
//     dialect.go only.
//   - A method that returns nil has committed its transaction: what it wrote
//     survives a crash of the process (and, with synchronous=FULL, of the
//     machine).
//   - Transitions of queued messages are compare-and-set on the lock owner, so
//     two workers never both own a queued message, and an outcome recorded by a
//     worker that lost its lock is refused rather than applied.
//   - Migrations are embedded, versioned, applied under a lock (a PostgreSQL
//     advisory lock; SQLite's write lock), each in its own transaction with its
//     version row, so two concurrent upgrades apply each migration once and a
//     failed migration leaves nothing half-applied.
//
// Times are stored as integer microseconds since the Unix epoch in both
// dialects.
package store
