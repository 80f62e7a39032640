package config

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned by Locate when no configuration file exists in any of the
// places it looks.
var ErrNotFound = errors.New("no postal.yml found (looked in /config/postal.yml and /etc/postal/postal.yml; use --config or POSTAL_CONFIG_FILE_PATH)")

// EnvConfigFilePath is the environment variable naming the configuration file, as in Postal.
const EnvConfigFilePath = "POSTAL_CONFIG_FILE_PATH"

// Locate finds the configuration file: the --config flag when it is not "", else
// POSTAL_CONFIG_FILE_PATH when set and not "", else /config/postal.yml, else
// /etc/postal/postal.yml. A path given by the flag or the variable must exist: if it
// does not, Locate returns an error naming it (and where it came from) rather than
// falling back. When none of the standard places holds a file it returns "", ErrNotFound.
// lookup reads the environment and exists tests a path; nil means "unset" and "absent".
func Locate(flag string, lookup func(string) (string, bool), exists func(string) bool) (string, error) {
	if exists == nil {
		exists = func(string) bool { return false }
	}
	if flag != "" {
		if !exists(flag) {
			return "", fmt.Errorf("config file %s (from --config) does not exist", flag)
		}
		return flag, nil
	}
	if lookup != nil {
		if p, ok := lookup(EnvConfigFilePath); ok && p != "" {
			if !exists(p) {
				return "", fmt.Errorf("config file %s (from %s) does not exist", p, EnvConfigFilePath)
			}
			return p, nil
		}
	}
	for _, p := range []string{"/config/postal.yml", "/etc/postal/postal.yml"} {
		if exists(p) {
			return p, nil
		}
	}
	return "", ErrNotFound
}
