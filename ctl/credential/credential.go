// Package credential is `postalctl credential`: create (printing a new key
// once), list and remove a server's SMTP, API and SMTP-IP credentials.
// Keys are stored only as SHA-256 hashes; listings show a 4-character hint.
package credential

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// NewCmd returns the credential command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "credential", Short: "Manage a server's SMTP, API and SMTP-IP credentials"}
	cmd.AddCommand(newCreateCmd(f, nil), newListCmd(f, nil), newRemoveCmd(f, nil))
	return cmd
}

// KeyLength is the length of generated keys, as Postal's.
const KeyLength = 24

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewKey returns KeyLength characters drawn uniformly from letters and
// digits with crypto/rand (about 143 bits).
func NewKey() string {
	var b strings.Builder
	buf := make([]byte, 1)
	for b.Len() < KeyLength {
		_, _ = rand.Read(buf) // crypto/rand never fails short
		// 248 = 4*62: drop larger bytes so every character is equally likely.
		if buf[0] < 248 {
			b.WriteByte(keyAlphabet[int(buf[0])%len(keyAlphabet)])
		}
	}
	return b.String()
}

// ParseType maps smtp, api and smtp-ip (any case) to the store's names.
func ParseType(t string) (string, error) {
	switch strings.ToLower(t) {
	case "smtp":
		return store.CredentialSMTP, nil
	case "api":
		return store.CredentialAPI, nil
	case "smtp-ip":
		return store.CredentialSMTPIP, nil
	}
	return "", cli.Usagef("--type %q: want smtp, api or smtp-ip", t)
}

func describeKey(c *store.Credential) string {
	if c.Type == store.CredentialSMTPIP {
		return c.CIDR
	}
	return fmt.Sprintf("%s…", c.KeyHint)
}
