package queuecmd_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/queuecmd"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/store"
)

// A prefix another installation owns is emptied and handed to this one,
// only once confirmed; keys of other prefixes stay.
func TestResetHandsThePrefixToThisInstallation(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	ctx := context.Background()
	rdb, keys := e.Redis(t)
	other := redisconn.NewKeys(keys.Name() + "-neighbour")
	t.Cleanup(func() { rdb.Del(context.Background(), other.Key("inflight")) })
	for _, k := range []string{keys.Key("stream", "outgoing"), keys.Key("inflight"), other.Key("inflight")} {
		if err := rdb.Set(ctx, k, "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := redisconn.ClaimPrefix(ctx, rdb, keys, "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	newCmd := func(f *cli.Factory) *cobra.Command {
		root := &cobra.Command{Use: "queue"}
		root.AddCommand(queuecmd.NewResetCmd(f, nil))
		return root
	}
	count := func() int {
		t.Helper()
		found, err := redisconn.ScanKeys(ctx, rdb, keys.Pattern())
		if err != nil {
			t.Fatal(err)
		}
		return len(found)
	}

	if res := e.Run(t, newCmd, "queue", "reset"); res.Code != cli.ExitUsage || !strings.Contains(res.RunErr.Error(), "add --yes") {
		t.Fatalf("pipe without --yes: exit %d, %v", res.Code, res.RunErr)
	}
	res := e.RunIO(t, "n\n", true, newCmd, "queue", "reset")
	if !errors.Is(res.RunErr, queuecmd.ErrNotConfirmed) ||
		!strings.Contains(res.Out, "(owned by installation 0123456789abcdef0123456789abcdef, not this one). Proceed? [y/N]") {
		t.Fatalf("declined: exit %d, %v, %q", res.Code, res.RunErr, res.Out)
	}
	if n := count(); n != 3 {
		t.Fatalf("declined reset left %d keys, want 3", n)
	}

	res = e.Run(t, newCmd, "queue", "reset", "--yes", "--json")
	var out queuecmd.Reset
	if err := json.Unmarshal([]byte(res.Out), &out); err != nil || res.Code != 0 {
		t.Fatalf("reset: exit %d, %v, %v, %q", res.Code, res.RunErr, err, res.Out)
	}
	id, err := e.Store.InstallationID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := queuecmd.Reset{Prefix: keys.Name(), Installation: id, FormerOwner: "0123456789abcdef0123456789abcdef", Deleted: 3}
	if out != want {
		t.Fatalf("reset = %+v, want %+v", out, want)
	}
	left, err := redisconn.ScanKeys(ctx, rdb, keys.Pattern())
	if err != nil || !slices.Equal(left, []string{keys.Key("installation")}) {
		t.Fatalf("keys after reset: %v, %v", left, err)
	}
	if err := redisconn.ClaimPrefix(ctx, rdb, keys, id); err != nil {
		t.Fatalf("this installation's claim after reset: %v", err)
	}
	if rdb.Exists(ctx, other.Key("inflight")).Val() != 1 {
		t.Error("reset deleted another prefix's key")
	}
	res = e.Run(t, newCmd, "queue", "reset", "--yes")
	if res.Code != 0 || !strings.Contains(res.Out, "Deleted 1 keys under "+keys.Prefix()+"; the prefix now belongs to installation "+id) {
		t.Fatalf("second reset: exit %d, %v, %q", res.Code, res.RunErr, res.Out)
	}
}

// Commands that change Redis refuse a prefix another installation owns,
// before anything changes in SQL.
func TestWritesRefuseAnotherInstallationsPrefix(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	acc := populate(t, e)
	ctx := context.Background()
	rdb, keys := e.Redis(t)
	if err := redisconn.ClaimPrefix(ctx, rdb, keys, "ffffffffffffffffffffffffffffffff"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"queue", "drop", fmt.Sprint(acc[1].QueuedID), "--yes"},
		{"queue", "drop", "--dead", "--yes"},
		{"queue", "dead", "requeue"},
	} {
		res := e.Run(t, queuecmd.NewCmd, args...)
		if res.Code != cli.ExitUsage || !strings.Contains(fmt.Sprint(res.RunErr), "belongs to another installation") {
			t.Fatalf("%v: exit %d, %v; want a refusal", args, res.Code, res.RunErr)
		}
	}
	if m, err := e.Store.Message(ctx, acc[1].MessageID); err != nil || m.Status != store.StatusPending {
		t.Fatalf("message after the refused drop: %v, %v", m, err)
	}
	if res := e.Run(t, queuecmd.NewCmd, "queue", "ls"); res.Code != 0 {
		t.Fatalf("queue ls: exit %d, %v", res.Code, res.RunErr)
	}
}
