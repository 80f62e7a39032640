package route

import (
	"context"
	"io"
	"testing"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// TestEndpointArgsToOptions: argv to Options for the three verbs.
func TestEndpointArgsToOptions(t *testing.T) {
	f := cli.NewFactory(cli.NewTestIO("", false).IOStreams, func(string) (string, bool) { return "", false })
	var got *EndpointOptions
	capture := func(_ context.Context, o *EndpointOptions) error { got = o; return nil }
	for _, cmd := range []struct {
		name string
		run  func([]string) error
	}{
		{"add", func(a []string) error { return quiet(newEndpointAddCmd(f, capture), a) }},
		{"rm", func(a []string) error { return quiet(newEndpointRemoveCmd(f, capture), a) }},
	} {
		got = nil
		if err := cmd.run([]string{"acme/mail", "support@example.com", "0b5b9d56"}); err != nil {
			t.Fatalf("%s: %v", cmd.name, err)
		}
		if got == nil || got.Path != "acme/mail" || got.Route != "support@example.com" || got.Endpoint != "0b5b9d56" {
			t.Errorf("%s: options = %+v", cmd.name, got)
		}
		if err := cmd.run([]string{"acme/mail", "support@example.com"}); err == nil {
			t.Errorf("%s with two arguments: no error", cmd.name)
		}
	}
	var list *EndpointListOptions
	c := newEndpointListCmd(f, func(_ context.Context, o *EndpointListOptions) error { list = o; return nil })
	if err := quiet(c, []string{"acme/mail", "7f1c"}); err != nil || list == nil || list.Path != "acme/mail" || list.Route != "7f1c" {
		t.Errorf("ls: %+v, %v", list, err)
	}
}

// quiet runs c with args and no usage or error printing.
func quiet(c *cobra.Command, args []string) error {
	c.SilenceUsage, c.SilenceErrors = true, true
	c.SetOut(io.Discard)
	c.SetErr(io.Discard)
	c.SetArgs(args)
	return c.Execute()
}
