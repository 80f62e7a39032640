#!/usr/bin/env bash
# Makes sure the services the tests need are running on this machine:
# Redis on 127.0.0.1:6379, PostgreSQL on 127.0.0.1:5432 with a postgres
# superuser reachable over TCP, and MariaDB on 127.0.0.1:3306 with a user
# that may create databases (the import-postal tests build Postal-shaped ones), tmux (the console
# e2e test), and the message scanners: rspamd (HTTP 127.0.0.1:11334), SpamAssassin spamd
# (127.0.0.1:783, local tests only) and ClamAV clamd (127.0.0.1:3310, a private database with one
# signature for the EICAR test string: signature downloads are not possible offline). Installs them
# from Debian's packages when missing. Prints the environment the tests should use (eval it).
set -euo pipefail
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq >&2; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 6379; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no >&2
  for _ in $(seq 100); do port_open 6379 && break; sleep 0.1; done
fi
port_open 6379 || { echo "ci-services: Redis did not start" >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || apt_install redis-server   # tests start private servers too
command -v tmux >/dev/null 2>&1 || apt_install tmux   # the console e2e test runs postalctl tui in tmux

if ! port_open 5432; then
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 || true
  for _ in $(seq 100); do port_open 5432 && break; sleep 0.1; done
fi
port_open 5432 || { echo "ci-services: PostgreSQL did not start" >&2; exit 1; }

url="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
if ! psql "$url" -Atc 'select 1' >/dev/null 2>&1; then
  # A distribution install wants a password over TCP: give postgres one.
  as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >&2
  url="postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"
  psql "$url" -Atc 'select 1' >/dev/null || { echo "ci-services: cannot log in to PostgreSQL as postgres" >&2; exit 1; }
fi
if ! port_open 3306; then
  command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 || apt_install mariadb-server
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  if command -v service >/dev/null 2>&1 && as_root service mariadb start >&2 2>/dev/null; then :; else
    as_root sh -c 'mysqld_safe --bind-address=127.0.0.1 --port=3306 >/dev/null 2>&1 &'
  fi
  for _ in $(seq 300); do port_open 3306 && break; sleep 0.1; done
fi
port_open 3306 || { echo "ci-services: MariaDB did not start" >&2; exit 1; }
# root logs in over the unix socket; the tests connect over TCP, so make a
# TCP user for them (no password, local only) when root over TCP is refused.
mysql_url="mysql://root@127.0.0.1:3306/"
if ! mysql --protocol=tcp -h127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1; then
  as_root mysql -uroot -e "CREATE USER IF NOT EXISTS 'postal_test'@'127.0.0.1';
    GRANT ALL PRIVILEGES ON *.* TO 'postal_test'@'127.0.0.1'; FLUSH PRIVILEGES;" >&2
  mysql_url="mysql://postal_test@127.0.0.1:3306/"
fi

# Message scanners. Each starts in the background; the waits come last so
# their start-up (clamd loading, rspamd's maps) overlaps.
scanners=()
command -v rspamd >/dev/null 2>&1 && command -v spamd >/dev/null 2>&1 && command -v clamd >/dev/null 2>&1 ||
  apt_install --no-install-recommends rspamd spamd clamav-daemon
if ! port_open 11334; then
  as_root mkdir -p /run/rspamd && as_root chown _rspamd:_rspamd /run/rspamd
  as_root rspamd -u _rspamd -g _rspamd >&2 || true
  scanners+=(11334)
fi
if ! port_open 783; then
  as_root spamd --daemonize --local --listen=127.0.0.1:783 --allowed-ips=127.0.0.1 \
    --username=debian-spamd --pidfile=/run/postal-spamd.pid --syslog=stderr 2>/dev/null || true
  scanners+=(783)
fi
if ! port_open 3310; then
  clamdir=/var/lib/postal-clamav
  as_root mkdir -p "$clamdir"
  # An .ndb body signature: the EICAR string anywhere in any part.
  eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
  printf 'Eicar-Test-Signature:0:*:%s\n' "$(printf '%s' "$eicar" | od -An -tx1 | tr -d ' \n')" |
    as_root tee "$clamdir/eicar.ndb" >/dev/null
  printf '%s\n' "TCPSocket 3310" "TCPAddr 127.0.0.1" "DatabaseDirectory $clamdir" "Foreground false" \
    "User clamav" "ScanMail true" "StreamMaxLength 50M" "MaxThreads 4" "LogFile /tmp/postal-clamd.log" \
    "PidFile /tmp/postal-clamd.pid" "SelfCheck 0" | as_root tee "$clamdir/clamd.conf" >/dev/null
  as_root chown -R clamav:clamav "$clamdir"
  as_root clamd --config-file="$clamdir/clamd.conf" >&2 || true
  scanners+=(3310)
fi
for p in "${scanners[@]}"; do
  for _ in $(seq 600); do port_open "$p" && break; sleep 0.1; done
done
port_open 11334 || { echo "ci-services: rspamd did not start (see its log in /var/log/rspamd)" >&2; exit 1; }
port_open 783 || { echo "ci-services: spamd did not start" >&2; exit 1; }
port_open 3310 || { echo "ci-services: clamd did not start (see /tmp/postal-clamd.log)" >&2; exit 1; }

echo "export POSTAL_TEST_POSTGRES_URL='$url'"
echo "export POSTAL_TEST_MYSQL_URL='$mysql_url'"
echo "export POSTAL_TEST_REDIS_URL='redis://127.0.0.1:6379/0'"
echo "export POSTAL_TEST_RSPAMD_URL='http://127.0.0.1:11334'"
echo "export POSTAL_TEST_SPAMD_ADDR='127.0.0.1:783'"
echo "export POSTAL_TEST_CLAMD_ADDR='127.0.0.1:3310'"
