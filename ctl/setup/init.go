// Package setup is `postalctl init`: it writes a commented postal.yml
// (SQLite beside it, local Redis, fresh random secrets) and a signing.key,
// ready for `postald --role all`, refusing to overwrite either without --force.
package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/signing"
	"github.com/postalgo/postal/daemon/store"
)

// Options are the parsed flags.
type Options struct {
	Factory  *cli.Factory
	Dir      string
	Force    bool
	SMTPPort int
	WebPort  int
}

// Result is the --json output.
type Result struct {
	ConfigPath     string `json:"config_path"`
	SigningKeyPath string `json:"signing_key_path"`
	KeyCreated     bool   `json:"signing_key_created"`
}

// NewCmd returns `init`; runF replaces the action in tests.
func NewCmd(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a ready-to-run postal.yml and signing.key",
		Long: "Write DIR/postal.yml (SQLite database beside it, Redis on 127.0.0.1, fresh random secrets)\n" +
			"and DIR/signing.key (RSA 2048, mode 0600). Existing files are kept unless --force.",
		Args: cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return Run(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "/etc/postal", "folder to write postal.yml and signing.key into")
	cmd.Flags().BoolVar(&o.Force, "force", false, "replace existing files")
	cmd.Flags().IntVar(&o.SMTPPort, "smtp-port", 25, "smtp_server.default_port to write")
	cmd.Flags().IntVar(&o.WebPort, "web-port", 5000, "web_server.default_port to write")
	return cmd
}

// Run writes the files.
func Run(_ context.Context, o *Options) error {
	if o.SMTPPort < 1 || o.SMTPPort > 65535 || o.WebPort < 1 || o.WebPort > 65535 {
		return cli.Usagef("--smtp-port and --web-port must be ports (1-65535)")
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", o.Dir, err)
	}
	cfgPath := filepath.Join(o.Dir, "postal.yml")
	keyPath := filepath.Join(o.Dir, "signing.key")
	if _, err := os.Stat(cfgPath); err == nil && !o.Force {
		return fmt.Errorf("%s already exists; use --force to replace it", cfgPath)
	}
	body, err := config.Template(config.TemplateOptions{SecretKey: store.RandomToken(64), SMTPPort: o.SMTPPort, WebPort: o.WebPort})
	if err != nil {
		return fmt.Errorf("render postal.yml: %w", err)
	}
	res := Result{ConfigPath: cfgPath, SigningKeyPath: keyPath}
	_, statErr := os.Stat(keyPath)
	if errors.Is(statErr, fs.ErrNotExist) || o.Force {
		key, err := signing.Generate(2048)
		if err != nil {
			return err
		}
		if err := signing.WriteFile(keyPath, key, o.Force); err != nil {
			return err
		}
		res.KeyCreated = true
	}
	if err := writeFileAtomic(cfgPath, body, 0o640); err != nil {
		return err
	}
	return o.Factory.Render(res, func(w io.Writer) {
		fmt.Fprintf(w, "Wrote %s\n", cfgPath)
		if res.KeyCreated {
			fmt.Fprintf(w, "Wrote %s (RSA 2048, mode 0600)\n", keyPath)
		} else {
			fmt.Fprintf(w, "Kept existing %s\n", keyPath)
		}
		fmt.Fprintf(w, "Next: postalctl --config %s upgrade && postald --config %s --role all\n", cfgPath, cfgPath)
	})
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".postal.yml.*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
