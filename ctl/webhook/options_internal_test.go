package webhook

import (
	"context"
	"testing"

	"github.com/postalgo/postal/ctl/cli"
)

func TestRequestsAndTestArgvToOptions(t *testing.T) {
	f := cli.NewFactory(cli.NewTestIO("", false).IOStreams, nil)
	var gotR *RequestsOptions
	cmd := newRequestsCmd(f, func(_ context.Context, o *RequestsOptions) error { gotR = o; return nil })
	cmd.SetArgs([]string{"acme/mail", "--webhook", "hooks", "--failed", "--limit", "7", "--uuid", "u-1"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if gotR.Path != "acme/mail" || gotR.Webhook != "hooks" || !gotR.Failed || gotR.Limit != 7 || gotR.UUID != "u-1" {
		t.Errorf("requests options = %+v", gotR)
	}
	cmd = newRequestsCmd(f, func(context.Context, *RequestsOptions) error { return nil })
	cmd.SetArgs([]string{"acme/mail", "--limit", "0"})
	if err := cmd.Execute(); cli.ExitCode(err) != cli.ExitUsage {
		t.Errorf("--limit 0: %v", err)
	}

	var gotT *TestOptions
	cmd = newTestCmd(f, func(_ context.Context, o *TestOptions) error { gotT = o; return nil })
	cmd.SetArgs([]string{"acme/mail", "0b1c", "--event", "messagebounced"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if gotT.Path != "acme/mail" || gotT.Webhook != "0b1c" || gotT.Event != "MessageBounced" {
		t.Errorf("test options = %+v", gotT)
	}
	cmd = newTestCmd(f, func(context.Context, *TestOptions) error { return nil })
	cmd.SetArgs([]string{"acme/mail", "x"})
	if err := cmd.Execute(); err != nil || gotT.Event != "MessageBounced" {
		t.Fatal(err)
	}
	cmd = newTestCmd(f, func(context.Context, *TestOptions) error { return nil })
	cmd.SetArgs([]string{"acme/mail", "x", "--event", "Nope"})
	if err := cmd.Execute(); cli.ExitCode(err) != cli.ExitUsage {
		t.Errorf("--event Nope: %v", err)
	}
}
