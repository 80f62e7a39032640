#!/usr/bin/env bash
# Sets up a development/evaluation install of postal on this machine:
#   - checks for Go (the version go.mod asks for) and installs Debian's if none,
#   - installs and starts redis-server when no Redis answers on 127.0.0.1:6379,
#   - installs gcc and OpenSSL's libcrypto when missing (fast DKIM signing),
#   - builds bin/postald and bin/postalctl,
#   - writes local/postal.yml + local/signing.key with `postalctl init` if absent,
#   - migrates the (SQLite) database.
# Then run:  bin/postald --config local/postal.yml --role all
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: $* is missing and this is not a Debian/Ubuntu system; install it and re-run" >&2
    exit 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

want_go=$(awk '/^go /{print $2}' go.mod)
if ! command -v go >/dev/null 2>&1; then
  [ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  say "installing Go from the distribution"
  apt_install golang-go
fi
have_go=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$want_go" "$have_go" | sort -V | head -1)" != "$want_go" ]; then
  echo "setup: Go $have_go is older than the $want_go that go.mod needs; install Go >= $want_go (https://go.dev/dl) and re-run" >&2
  exit 1
fi

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  if ! command -v redis-server >/dev/null 2>&1; then
    say "installing redis-server"
    apt_install redis-server
  fi
  say "starting redis-server on 127.0.0.1:6379"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    as_root systemctl enable --now redis-server
  else
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  fi
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break; sleep 0.1; done
fi

# postald signs DKIM through OpenSSL's libcrypto, loaded at run time, which
# needs a cgo build (a C compiler) and the library; without either it falls
# back to Go's crypto/rsa, about four times slower per signature.
if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
  say "installing gcc (cgo build: DKIM signing through libcrypto)"
  apt_install gcc libc6-dev
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libcrypto\.so\.\(3\|1\.1\)'; then
  say "installing openssl (libcrypto for DKIM signing)"
  apt_install openssl
fi

say "building bin/postald and bin/postalctl"
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
go build -trimpath -ldflags "-X github.com/postalgo/postal/daemon.Version=$version -X github.com/postalgo/postal/ctl.Version=$version" -o bin/ ./cmd/postald ./cmd/postalctl

if [ ! -f local/postal.yml ]; then
  say "writing local/postal.yml and local/signing.key"
  bin/postalctl init --dir local --smtp-port "${POSTAL_SMTP_PORT:-2525}" --web-port "${POSTAL_WEB_PORT:-5000}"
fi
say "migrating the database"
bin/postalctl --config local/postal.yml upgrade

cat <<MSG

Ready. Start every role in one process with:

  bin/postald --config local/postal.yml --role all

Health: curl http://127.0.0.1:9090/ready   SMTP: port ${POSTAL_SMTP_PORT:-2525}   Web: port ${POSTAL_WEB_PORT:-5000}
MSG
