package config

import (
	"errors"
	"strings"
	"testing"
)

func TestLocateOrder(t *testing.T) {
	tests := []struct {
		name     string
		flag     string
		env      map[string]string
		files    []string
		want     string
		wantErr  string // substring; "" means success
		notFound bool
	}{
		{name: "flag wins", flag: "/a/postal.yml", env: map[string]string{"POSTAL_CONFIG_FILE_PATH": "/b/postal.yml"},
			files: []string{"/a/postal.yml", "/b/postal.yml", "/config/postal.yml"}, want: "/a/postal.yml"},
		{name: "env when no flag", env: map[string]string{"POSTAL_CONFIG_FILE_PATH": "/b/postal.yml"},
			files: []string{"/b/postal.yml", "/config/postal.yml"}, want: "/b/postal.yml"},
		{name: "empty env is unset", env: map[string]string{"POSTAL_CONFIG_FILE_PATH": ""},
			files: []string{"/config/postal.yml"}, want: "/config/postal.yml"},
		{name: "container path before etc", files: []string{"/config/postal.yml", "/etc/postal/postal.yml"}, want: "/config/postal.yml"},
		{name: "etc last", files: []string{"/etc/postal/postal.yml"}, want: "/etc/postal/postal.yml"},
		{name: "missing flag path is an error naming it", flag: "/nope.yml", files: []string{"/config/postal.yml"},
			wantErr: "/nope.yml (from --config) does not exist"},
		{name: "missing env path is an error naming it", env: map[string]string{"POSTAL_CONFIG_FILE_PATH": "/gone.yml"},
			files: []string{"/config/postal.yml"}, wantErr: "/gone.yml (from POSTAL_CONFIG_FILE_PATH) does not exist"},
		{name: "nothing anywhere", notFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exists := func(p string) bool {
				for _, f := range tt.files {
					if f == p {
						return true
					}
				}
				return false
			}
			got, err := Locate(tt.flag, mapEnv(tt.env), exists)
			switch {
			case tt.notFound:
				if got != "" || !errors.Is(err, ErrNotFound) {
					t.Fatalf("Locate = %q, %v; want \"\", ErrNotFound", got, err)
				}
			case tt.wantErr != "":
				if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Locate = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
			default:
				if err != nil || got != tt.want {
					t.Fatalf("Locate = %q, %v; want %q", got, err, tt.want)
				}
			}
		})
	}
}
