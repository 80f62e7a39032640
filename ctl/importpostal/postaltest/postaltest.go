// Package postaltest builds a Postal-shaped MariaDB installation for tests:
// a main database with the tables and columns postalctl import-postal
// reads (written from Postal 3's schema) and a message database per server,
// with fixture data. Every database has a random name and is dropped at
// cleanup. Import it only from _test.go files.
//
// MariaDB is reached at POSTAL_TEST_MYSQL_URL (mysql://user:password@host:port/,
// default mysql://root@127.0.0.1:3306/). When it does not answer, the test
// fails when CI=true and is skipped otherwise.
package postaltest

import (
	"context"
	"crypto/rsa"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/postalgo/postal/daemon/dkim"
	"github.com/postalgo/postal/daemon/store"
)

// Conn is how tests reach MariaDB.
type Conn struct {
	Host     string
	Port     int
	Username string
	Password string
}

// URL is the MariaDB server tests use.
func URL() string {
	if u := os.Getenv("POSTAL_TEST_MYSQL_URL"); u != "" {
		return u
	}
	return "mysql://root@127.0.0.1:3306/"
}

// Server parses URL and checks that MariaDB answers; it fails the test in CI
// and skips it elsewhere when it does not.
func Server(t testing.TB) Conn {
	t.Helper()
	u, err := url.Parse(URL())
	if err != nil || u.Scheme != "mysql" {
		t.Fatalf("POSTAL_TEST_MYSQL_URL %q: want mysql://user:password@host:port/", URL())
	}
	c := Conn{Host: u.Hostname(), Port: 3306, Username: u.User.Username()}
	c.Password, _ = u.User.Password()
	if p := u.Port(); p != "" {
		c.Port, _ = strconv.Atoi(p)
	}
	db, err := c.open("")
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MariaDB at %s does not answer (%v); scripts/ci-services.sh starts it", URL(), err)
		}
		t.Skipf("MariaDB at %s does not answer (%v); set POSTAL_TEST_MYSQL_URL or run scripts/ci-services.sh", URL(), err)
	}
	return c
}

func (c Conn) open(database string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net = c.Username, c.Password, "tcp"
	cfg.Addr = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	cfg.DBName, cfg.ParseTime, cfg.Loc = database, true, time.UTC
	cfg.MultiStatements = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// Postal is one Postal installation's databases.
type Postal struct {
	Conn Conn
	// MainDatabase is the main database's name; Prefix starts the message
	// databases' names (<Prefix>-server-<id>).
	MainDatabase, Prefix string
	// Main is a connection to the main database.
	Main *sql.DB
	// dbs are dropped at cleanup.
	dbs []string
	t   testing.TB
}

// mainSchema is the part of Postal 3's main database the importer reads,
// column names and types as Postal has them.
const mainSchema = `
CREATE TABLE organizations (id INT AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(255), name VARCHAR(255), permalink VARCHAR(255),
  time_zone VARCHAR(255), created_at DATETIME(6), updated_at DATETIME(6), ip_pool_id INT, owner_id INT, deleted_at DATETIME(6),
  suspended_at DATETIME(6), suspension_reason VARCHAR(255)) CHARSET utf8mb4;
CREATE TABLE servers (id INT AUTO_INCREMENT PRIMARY KEY, organization_id INT, uuid VARCHAR(255), name VARCHAR(255),
  mode VARCHAR(255), ip_pool_id INT, created_at DATETIME(6), updated_at DATETIME(6), permalink VARCHAR(255), send_limit INT,
  deleted_at DATETIME(6), message_retention_days INT, raw_message_retention_days INT, raw_message_retention_size INT,
  allow_sender TINYINT(1) DEFAULT 0, token VARCHAR(255), send_limit_approaching_at DATETIME(6),
  send_limit_approaching_notified_at DATETIME(6), send_limit_exceeded_at DATETIME(6), send_limit_exceeded_notified_at DATETIME(6),
  spam_threshold DECIMAL(8,2), spam_failure_threshold DECIMAL(8,2), postmaster_address VARCHAR(255), suspended_at DATETIME(6),
  outbound_spam_threshold DECIMAL(8,2), domains_not_to_click_track TEXT, suspension_reason VARCHAR(255),
  log_smtp_data TINYINT(1) DEFAULT 0, privacy_mode TINYINT(1) DEFAULT 0) CHARSET utf8mb4;
CREATE TABLE domains (id INT AUTO_INCREMENT PRIMARY KEY, server_id INT, uuid VARCHAR(255), name VARCHAR(255),
  verification_token VARCHAR(255), verification_method VARCHAR(255), verified_at DATETIME, dkim_private_key TEXT,
  created_at DATETIME(6), updated_at DATETIME(6), dns_checked_at DATETIME(6), spf_status VARCHAR(255), spf_error VARCHAR(255),
  dkim_status VARCHAR(255), dkim_error VARCHAR(255), mx_status VARCHAR(255), mx_error VARCHAR(255),
  return_path_status VARCHAR(255), return_path_error VARCHAR(255), outgoing TINYINT(1) DEFAULT 1, incoming TINYINT(1) DEFAULT 1,
  owner_type VARCHAR(255), owner_id INT, dkim_identifier_string VARCHAR(255), use_for_any TINYINT(1)) CHARSET utf8mb4;
CREATE TABLE credentials (id INT AUTO_INCREMENT PRIMARY KEY, server_id INT, ` + "`key`" + ` VARCHAR(255), type VARCHAR(255),
  name VARCHAR(255), options TEXT, last_used_at DATETIME(6), created_at DATETIME(6), updated_at DATETIME(6),
  hold TINYINT(1) DEFAULT 0, uuid VARCHAR(255)) CHARSET utf8mb4;
CREATE TABLE routes (id INT AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(255), server_id INT, domain_id INT, endpoint_id INT,
  endpoint_type VARCHAR(255), name VARCHAR(255), spam_mode VARCHAR(255), created_at DATETIME(6), updated_at DATETIME(6),
  token VARCHAR(255), mode VARCHAR(255)) CHARSET utf8mb4;
CREATE TABLE additional_route_endpoints (id INT AUTO_INCREMENT PRIMARY KEY, route_id INT, endpoint_type VARCHAR(255),
  endpoint_id INT, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL) CHARSET utf8mb4;
CREATE TABLE http_endpoints (id INT AUTO_INCREMENT PRIMARY KEY, server_id INT, uuid VARCHAR(255), name VARCHAR(255),
  url VARCHAR(255), encoding VARCHAR(255), format VARCHAR(255), strip_replies TINYINT(1) DEFAULT 0, error TEXT,
  disabled_until DATETIME(6), last_used_at DATETIME(6), created_at DATETIME(6), updated_at DATETIME(6),
  include_attachments TINYINT(1) DEFAULT 1, timeout INT) CHARSET utf8mb4;
CREATE TABLE smtp_endpoints (id INT AUTO_INCREMENT PRIMARY KEY, server_id INT, uuid VARCHAR(255), name VARCHAR(255),
  hostname VARCHAR(255), ssl_mode VARCHAR(255), port INT, error TEXT, disabled_until DATETIME(6), last_used_at DATETIME(6),
  created_at DATETIME(6), updated_at DATETIME(6)) CHARSET utf8mb4;
CREATE TABLE address_endpoints (id INT AUTO_INCREMENT PRIMARY KEY, server_id INT, uuid VARCHAR(255), address VARCHAR(255),
  last_used_at DATETIME, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL) CHARSET utf8mb4;
CREATE TABLE webhooks (id INT AUTO_INCREMENT PRIMARY KEY, server_id INT, uuid VARCHAR(255), name VARCHAR(255),
  url VARCHAR(255), last_used_at DATETIME, all_events TINYINT(1) DEFAULT 0, enabled TINYINT(1) DEFAULT 1,
  sign TINYINT(1) DEFAULT 1, created_at DATETIME(6), updated_at DATETIME(6)) CHARSET utf8mb4;
CREATE TABLE webhook_events (id INT AUTO_INCREMENT PRIMARY KEY, webhook_id INT, event VARCHAR(255), created_at DATETIME(6)) CHARSET utf8mb4;
CREATE TABLE ip_pools (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255), uuid VARCHAR(255), created_at DATETIME(6),
  updated_at DATETIME(6), ` + "`default`" + ` TINYINT(1) DEFAULT 0) CHARSET utf8mb4;
CREATE TABLE ip_addresses (id INT AUTO_INCREMENT PRIMARY KEY, ip_pool_id INT, ipv4 VARCHAR(255), ipv6 VARCHAR(255),
  created_at DATETIME(6), updated_at DATETIME(6), hostname VARCHAR(255), priority INT) CHARSET utf8mb4;
CREATE TABLE ip_pool_rules (id INT AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(255), owner_type VARCHAR(255), owner_id INT,
  ip_pool_id INT, from_text TEXT, to_text TEXT, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL) CHARSET utf8mb4;
CREATE TABLE track_domains (id INT AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(255), server_id INT, domain_id INT,
  name VARCHAR(255), dns_checked_at DATETIME, dns_status VARCHAR(255), dns_error VARCHAR(255), created_at DATETIME NOT NULL,
  updated_at DATETIME NOT NULL, ssl_enabled TINYINT(1) DEFAULT 1, track_clicks TINYINT(1) DEFAULT 1,
  track_loads TINYINT(1) DEFAULT 1, excluded_click_domains TEXT) CHARSET utf8mb4;
`

// messageSchema is the suppressions table of a Postal message database.
const messageSchema = `
CREATE TABLE suppressions (id INT AUTO_INCREMENT PRIMARY KEY, type VARCHAR(255), address VARCHAR(255), reason VARCHAR(255),
  timestamp DECIMAL(18,6), keep_until DECIMAL(18,6)) CHARSET utf8mb4;
`

// New creates an empty Postal main database (schema only) with a random
// name and prefix; everything it or MessageDB creates is dropped at cleanup.
func New(t testing.TB) *Postal {
	t.Helper()
	c := Server(t)
	suffix := strings.ToLower(store.RandomToken(5))
	p := &Postal{Conn: c, MainDatabase: "postal_import_" + suffix, Prefix: "pit" + suffix, t: t}
	admin, err := c.open("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, db := range p.dbs {
			if _, err := admin.Exec("DROP DATABASE IF EXISTS `" + db + "`"); err != nil {
				t.Errorf("drop %s: %v", db, err)
			}
		}
		admin.Close()
	})
	p.create(admin, p.MainDatabase, mainSchema)
	p.Main, err = c.open(p.MainDatabase)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Main.Close() })
	return p
}

func (p *Postal) create(admin *sql.DB, name, schema string) {
	p.t.Helper()
	if _, err := admin.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4"); err != nil {
		p.t.Fatalf("create database %s: %v", name, err)
	}
	p.dbs = append(p.dbs, name)
	db, err := p.Conn.open(name)
	if err != nil {
		p.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(schema); err != nil {
		p.t.Fatalf("schema of %s: %v", name, err)
	}
}

// MessageDB creates server id's message database (with its suppressions
// table) and returns a connection to it.
func (p *Postal) MessageDB(id int64) *sql.DB {
	p.t.Helper()
	admin, err := p.Conn.open("")
	if err != nil {
		p.t.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("%s-server-%d", p.Prefix, id)
	p.create(admin, name, messageSchema)
	db, err := p.Conn.open(name)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs statements on the main database.
func (p *Postal) Exec(q string, args ...any) {
	p.t.Helper()
	if _, err := p.Main.Exec(q, args...); err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
}

// Fixture is what Seed wrote, for assertions.
type Fixture struct {
	// ServerToken is acme/mail's token as Postal stores it (mixed case).
	ServerToken string
	// APIKey, SMTPKey are acme/mail's credentials; SMTPIP its SMTP-IP network.
	APIKey, SMTPKey, SMTPIP string
	// Domain is acme/mail's verified domain, signed with DKIMKey under the
	// selector <dkim_identifier>-<DKIMIdentifier>.
	Domain         string
	DKIMKey        *rsa.PrivateKey
	DKIMIdentifier string
	// RouteToken is the token of support@Domain's route.
	RouteToken string
	// Suppressed is on acme/mail's suppression list.
	Suppressed string
}

// Seed fills the databases with one live organisation (acme) and server
// (acme/mail, Postal id 1) holding one of everything the importer reads,
// plus an organisation-level domain, a soft-deleted organisation and a
// soft-deleted server that must not be imported.
func (p *Postal) Seed() *Fixture {
	p.t.Helper()
	key, err := dkim.GenerateKey(1024)
	if err != nil {
		p.t.Fatal(err)
	}
	fx := &Fixture{ServerToken: "Hq3kZp", APIKey: "ApiKey0123456789abcdefGH", SMTPKey: "SmtpKey0123456789abcdefG",
		SMTPIP: "198.51.100.0/24", Domain: "example.com", DKIMKey: key, DKIMIdentifier: "QWERTY", RouteToken: "rt0k3n",
		Suppressed: "gone@example.org"}
	created := "2023-05-01 12:00:00"
	p.Exec(`INSERT INTO ip_pools (id, name, uuid, created_at, updated_at, ` + "`default`" + `) VALUES
		(1, 'main', '5d9e0a64-0000-4000-8000-000000000001', '` + created + `', '` + created + `', 1)`)
	p.Exec(`INSERT INTO ip_addresses (id, ip_pool_id, ipv4, ipv6, hostname, priority, created_at, updated_at) VALUES
		(1, 1, '192.0.2.10', NULL, 'mta1.example.net', 100, ?, ?)`, created, created)
	p.Exec(`INSERT INTO organizations (id, uuid, name, permalink, time_zone, created_at, updated_at, deleted_at) VALUES
		(1, '5d9e0a64-0000-4000-8000-000000000010', 'Acme Inc', 'acme', 'Europe/London', ?, ?, NULL),
		(2, '5d9e0a64-0000-4000-8000-000000000011', 'Gone', 'gone', 'UTC', ?, ?, ?)`, created, created, created, created, created)
	p.Exec(`INSERT INTO servers (id, organization_id, uuid, name, mode, ip_pool_id, created_at, updated_at, permalink, send_limit,
		deleted_at, message_retention_days, raw_message_retention_days, raw_message_retention_size, allow_sender, token,
		spam_threshold, spam_failure_threshold, log_smtp_data, privacy_mode) VALUES
		(1, 1, '5d9e0a64-0000-4000-8000-000000000020', 'Mail', 'Live', 1, ?, ?, 'mail', 5000, NULL, 60, 30, 2048, 0, ?, 5.00, 20.00, 0, 0),
		(2, 1, '5d9e0a64-0000-4000-8000-000000000021', 'Old', 'Live', NULL, ?, ?, 'old', NULL, ?, 60, 30, 2048, 0, 'oldtok', 5.00, 20.00, 0, 0),
		(3, 2, '5d9e0a64-0000-4000-8000-000000000022', 'Gone', 'Live', NULL, ?, ?, 'mail', NULL, NULL, 60, 30, 2048, 0, 'gontok', 5.00, 20.00, 0, 0)`,
		created, created, fx.ServerToken, created, created, created, created, created)
	p.Exec(`INSERT INTO domains (id, server_id, uuid, name, verification_token, verification_method, verified_at, dkim_private_key,
		created_at, updated_at, spf_status, dkim_status, outgoing, incoming, owner_type, owner_id, dkim_identifier_string, use_for_any) VALUES
		(1, 1, '5d9e0a64-0000-4000-8000-000000000030', ?, 'vtok1', 'DNS', ?, ?, ?, ?, 'OK', 'OK', 1, 1, 'Server', 1, ?, 0),
		(2, NULL, '5d9e0a64-0000-4000-8000-000000000031', 'shared.example', 'vtok2', 'DNS', ?, ?, ?, ?, NULL, NULL, 1, 1, 'Organization', 1, 'ASDFGH', 0)`,
		fx.Domain, created, string(dkim.EncodePrivateKey(key)), created, created, fx.DKIMIdentifier,
		created, string(dkim.EncodePrivateKey(key)), created, created)
	p.Exec("INSERT INTO credentials (id, server_id, `key`, type, name, created_at, updated_at, hold, uuid) VALUES "+
		`(1, 1, ?, 'API', 'app api', ?, ?, 0, '5d9e0a64-0000-4000-8000-000000000040'),
		(2, 1, ?, 'SMTP', 'app', ?, ?, 0, '5d9e0a64-0000-4000-8000-000000000041'),
		(3, 1, ?, 'SMTP-IP', 'office', ?, ?, 1, '5d9e0a64-0000-4000-8000-000000000042'),
		(4, 2, 'OldKey0123456789abcdefGH', 'API', 'old', ?, ?, 0, '5d9e0a64-0000-4000-8000-000000000043')`,
		fx.APIKey, created, created, fx.SMTPKey, created, created, fx.SMTPIP, created, created, created, created)
	p.Exec(`INSERT INTO http_endpoints (id, server_id, uuid, name, url, encoding, format, strip_replies, include_attachments, timeout,
		created_at, updated_at) VALUES (1, 1, '5d9e0a64-0000-4000-8000-000000000050', 'App', 'https://app.example.com/incoming',
		'BodyAsJSON', 'Hash', 1, 0, 10, ?, ?)`, created, created)
	p.Exec(`INSERT INTO smtp_endpoints (id, server_id, uuid, name, hostname, ssl_mode, port, created_at, updated_at) VALUES
		(1, 1, '5d9e0a64-0000-4000-8000-000000000051', 'Relay', 'mx.example.org', 'STARTTLS', 2525, ?, ?)`, created, created)
	p.Exec(`INSERT INTO address_endpoints (id, server_id, uuid, address, created_at, updated_at) VALUES
		(1, 1, '5d9e0a64-0000-4000-8000-000000000052', 'ops@example.org', ?, ?)`, created, created)
	p.Exec(`INSERT INTO routes (id, uuid, server_id, domain_id, endpoint_id, endpoint_type, name, spam_mode, created_at, updated_at,
		token, mode) VALUES
		(1, '5d9e0a64-0000-4000-8000-000000000060', 1, 1, 1, 'HTTPEndpoint', 'support', 'Mark', ?, ?, ?, 'Endpoint'),
		(2, '5d9e0a64-0000-4000-8000-000000000061', 1, 2, NULL, NULL, 'info', 'Quarantine', ?, ?, 'rt2tok', 'Accept'),
		(3, '5d9e0a64-0000-4000-8000-000000000062', 1, NULL, 1, 'SMTPEndpoint', '__returnpath__', 'Mark', ?, ?, 'rt3tok', 'Endpoint')`,
		created, created, fx.RouteToken, created, created, created, created)
	p.Exec(`INSERT INTO additional_route_endpoints (route_id, endpoint_type, endpoint_id, created_at, updated_at) VALUES
		(1, 'AddressEndpoint', 1, ?, ?)`, created, created)
	p.Exec(`INSERT INTO webhooks (id, server_id, uuid, name, url, all_events, enabled, sign, created_at, updated_at) VALUES
		(1, 1, '5d9e0a64-0000-4000-8000-000000000070', 'Events', 'https://hooks.example.com/postal', 0, 1, 1, ?, ?)`, created, created)
	p.Exec(`INSERT INTO webhook_events (webhook_id, event, created_at) VALUES (1, 'MessageSent', ?), (1, 'MessageBounced', ?)`,
		created, created)
	p.Exec(`INSERT INTO ip_pool_rules (uuid, owner_type, owner_id, ip_pool_id, from_text, to_text, created_at, updated_at) VALUES
		('5d9e0a64-0000-4000-8000-000000000080', 'Server', 1, 1, NULL, 'gmail.com\nyahoo.com', ?, ?)`, created, created)
	p.Exec(`INSERT INTO track_domains (uuid, server_id, domain_id, name, dns_status, created_at, updated_at, ssl_enabled, track_clicks,
		track_loads, excluded_click_domains) VALUES ('5d9e0a64-0000-4000-8000-000000000090', 1, 1, 'click.example.com', 'OK', ?, ?,
		1, 1, 0, 'example.net')`, created, created)
	msg := p.MessageDB(1)
	if _, err := msg.Exec(`INSERT INTO suppressions (type, address, reason, timestamp, keep_until) VALUES
		('recipient', ?, 'too many hard fails', 1700000000.5, 4102444800)`, fx.Suppressed); err != nil {
		p.t.Fatal(err)
	}
	return fx
}
