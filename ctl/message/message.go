// Package message is `postalctl message`: show one message with its
// deliveries (never its body unless --raw), search messages (filters and
// keyset pages), and act on one: retry now, hold, release, cancel, delete.
// The actions run through the same code as the TUI's (source.Live.Act). A message is named by its numeric
// id or by its token. Exit codes: 0 done, 1 not found or failure, 2 usage.
package message

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// NewCmd returns the message command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "message", Short: "Find and inspect messages; retry, hold, release, cancel or delete one"}
	cmd.AddCommand(newShowCmd(f, nil), newReleaseCmd(f, nil), newListCmd(f, nil))
	cmd.AddCommand(newActCmds(f, nil)...)
	return cmd
}

// find opens the store and looks up the message named by ref: a numeric id,
// else a token. A token may be all digits too (one in about 1,800 of the
// 16-hex-digit tokens is), so a number that is no message's id is tried as
// a token.
func find(ctx context.Context, f *cli.Factory, ref string) (*store.Store, *store.Message, error) {
	if ref == "" {
		return nil, nil, cli.Usagef("a message id or token is required")
	}
	st, err := f.Store(ctx)
	if err != nil {
		return nil, nil, err
	}
	var m *store.Message
	err = store.ErrNotFound
	if id, perr := strconv.ParseInt(ref, 10, 64); perr == nil {
		m, err = st.Message(ctx, id)
	}
	if errors.Is(err, store.ErrNotFound) {
		m, err = st.MessageByToken(ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("message %s not found; list a server's messages with `postalctl message ls ORG/SERVER`", ref)
	}
	if err != nil {
		return nil, nil, err
	}
	return st, m, nil
}
