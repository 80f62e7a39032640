// Command postald runs postal's roles; see package daemon.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/postalgo/postal/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := daemon.Main(ctx, os.Args[1:], daemon.Env{
		Lookup:         os.LookupEnv,
		Stdout:         os.Stdout,
		Stderr:         os.Stderr,
		StderrTerminal: term.IsTerminal(int(os.Stderr.Fd())),
	})
	stop()
	os.Exit(code)
}
