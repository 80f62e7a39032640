// Command postalctl administers a postal installation; see package ctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/postalgo/postal/ctl"
	"github.com/postalgo/postal/ctl/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], cli.SystemIO(), os.LookupEnv)
	stop()
	os.Exit(code)
}
