// Package server is `postalctl server`: create, list, show, change,
// suspend, unsuspend and remove mail servers (ORG/SERVER). It also holds
// what every noun that works on a server shares: Find, which turns an
// ORG/SERVER argument into a server or a one-line error saying what to do,
// and Complete, the shell completion of ORG/SERVER arguments.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// NewCmd returns the server command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Manage mail servers (ORG/SERVER)",
	}
	cmd.AddCommand(newCreateCmd(f, nil), newListCmd(f, nil), newShowCmd(f, nil), newSetCmd(f, nil),
		newSuspendCmd(f, nil, true), newSuspendCmd(f, nil, false), newRemoveCmd(f, nil))
	return cmd
}

// SplitPath splits ORG/SERVER into its permalinks; a malformed path is a
// usage error.
func SplitPath(path string) (org, srv string, err error) {
	org, srv, ok := strings.Cut(path, "/")
	if !ok || !ValidPermalink(org) || !ValidPermalink(srv) {
		return "", "", cli.Usagef("%q is not ORG/SERVER (permalinks of lower-case letters, digits and hyphens)", path)
	}
	return org, srv, nil
}

// ValidPermalink reports whether p is a permalink: 1 to 63 lower-case
// letters, digits and hyphens, not starting or ending with a hyphen.
func ValidPermalink(p string) bool {
	if p == "" || len(p) > 63 || p[0] == '-' || p[len(p)-1] == '-' {
		return false
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Find opens the store and looks up the server at path (ORG/SERVER). A
// malformed path is a usage error; an unknown server an error that says how
// to list servers.
func Find(ctx context.Context, f *cli.Factory, path string) (*store.Store, *store.Server, error) {
	if _, _, err := SplitPath(path); err != nil {
		return nil, nil, err
	}
	st, err := f.Store(ctx)
	if err != nil {
		return nil, nil, err
	}
	srv, err := st.Server(ctx, path)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("server %s not found; list servers with `postalctl server ls`", path)
	}
	if err != nil {
		return nil, nil, err
	}
	return st, srv, nil
}

// Complete completes the first argument with the ORG/SERVER paths that
// exist; later arguments get no completion. It never offers files.
func Complete(f *cli.Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		st, err := f.Store(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		list, err := st.Servers(ctx, "")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, s := range list {
			if strings.HasPrefix(s.Path(), toComplete) {
				out = append(out, cobra.CompletionWithDesc(s.Path(), s.Name))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// CompleteOrg completes the first argument with organisation permalinks
// followed by "/" (for commands that take a new ORG/SERVER).
func CompleteOrg(f *cli.Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		st, err := f.Store(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		orgs, err := st.Organizations(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, o := range orgs {
			if strings.HasPrefix(o.Permalink+"/", toComplete) {
				out = append(out, o.Permalink+"/")
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// Deleted is the --json output of a removal.
type Deleted struct {
	Deleted string `json:"deleted"`
}

// RenderDeleted prints that what was removed, or {"deleted": what}.
func RenderDeleted(f *cli.Factory, what string) error {
	return f.Render(Deleted{Deleted: what}, func(w io.Writer) { fmt.Fprintf(w, "Removed %s.\n", what) })
}

func printServer(w io.Writer, s *store.Server) {
	limit := "none"
	if s.SendLimit != nil {
		limit = fmt.Sprint(*s.SendLimit)
	}
	suspended := "no"
	if s.Suspended() {
		suspended = "since " + cli.FormatTime(s.SuspendedAt)
		if s.SuspensionReason != "" {
			suspended += " (" + s.SuspensionReason + ")"
		}
	}
	outbound := "not inspected"
	if t := s.OutboundSpamThreshold; t != nil {
		outbound = fmt.Sprintf("inspected, held at %g or more", *t)
	}
	for _, kv := range [][2]string{
		{"Server", s.Path()}, {"Name", s.Name}, {"UUID", s.UUID}, {"Mode", s.Mode}, {"Token", s.Token},
		{"Send limit", limit},
		{"Message retention", fmt.Sprintf("%d days", s.MessageRetentionDays)},
		{"Raw message retention", fmt.Sprintf("%d days, %d MB", s.RawMessageRetentionDays, s.RawMessageRetentionSize)},
		{"Spam threshold", fmt.Sprintf("%g (fail at %g)", s.SpamThreshold, s.SpamFailureThreshold)},
		{"Outbound spam", outbound},
		{"Privacy mode", yesNo(s.PrivacyMode)}, {"Allow sender", yesNo(s.AllowSender)},
		{"Log SMTP data", yesNo(s.LogSMTPData)}, {"Require TLS", yesNo(s.RequireTLS)},
		{"Suspended", suspended}, {"Created", cli.FormatTime(s.CreatedAt)},
	} {
		fmt.Fprintf(w, "%s:\t%s\n", kv[0], kv[1])
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
