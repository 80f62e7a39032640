// Package daemon is postald: it parses the command line, loads and checks
// the configuration, waits for WAIT_FOR_TARGETS, refuses to start without a
// usable signing key or with a schema that does not match the binary, and
// then runs the selected roles (web-server, smtp-server, worker, cron,
// requeuer) until SIGTERM or SIGINT, when it stops accepting work, drains
// what is in flight within a grace period, and exits 0.
//
// Only this package knows every role; roles never import each other.
package daemon
