// Package storetest gives tests a migrated store on SQLite (in t.TempDir())
// and on PostgreSQL (a fresh database per test, dropped afterwards), so one
// suite runs against both. Import it only from _test.go files.
//
// PostgreSQL is reached at POSTAL_TEST_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). When it does
// not answer the test fails, unless POSTAL_TEST_SKIP_POSTGRES=1 is set (never
// in CI).
package storetest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
)

// Backend names a database a suite runs on.
type Backend struct {
	// Name is "sqlite" or "postgres", for t.Run.
	Name string
	// Open returns a migrated store private to t, closed at cleanup.
	Open func(t testing.TB) *store.Store
}

// Backends lists SQLite and PostgreSQL.
func Backends() []Backend {
	return []Backend{{Name: "sqlite", Open: SQLite}, {Name: "postgres", Open: Postgres}}
}

// Each runs fn as a subtest on every backend.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.Open(t)) })
	}
}

// SQLiteOptions returns store options for a fresh SQLite file in t.TempDir().
func SQLiteOptions(t testing.TB) store.Options {
	return store.Options{Driver: store.SQLite, Path: filepath.Join(t.TempDir(), "postal.sqlite")}
}

// SQLite returns a migrated store on a fresh SQLite file.
func SQLite(t testing.TB) *store.Store {
	t.Helper()
	return openMigrated(t, SQLiteOptions(t))
}

// AdminURL is the PostgreSQL server tests create their databases on.
func AdminURL() string {
	if u := os.Getenv("POSTAL_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// PostgresOptions creates an empty database private to t (dropped at
// cleanup) and returns store options for it.
func PostgresOptions(t testing.TB) store.Options {
	t.Helper()
	if os.Getenv("POSTAL_TEST_SKIP_POSTGRES") == "1" {
		t.Skip("POSTAL_TEST_SKIP_POSTGRES=1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", AdminURL())
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer admin.Close()
	name := "postal_test_" + strings.ToLower(store.RandomToken(6))
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("postgres at %s: create database: %v (set POSTAL_TEST_POSTGRES_URL)", AdminURL(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := sql.Open("pgx", AdminURL())
		if err != nil {
			t.Errorf("postgres cleanup: %v", err)
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("postgres cleanup: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatalf("POSTAL_TEST_POSTGRES_URL: %v", err)
	}
	u.Path = "/" + name
	return store.Options{Driver: store.Postgres, URL: u.String()}
}

// Postgres returns a migrated store on a fresh PostgreSQL database.
func Postgres(t testing.TB) *store.Store {
	t.Helper()
	return openMigrated(t, PostgresOptions(t))
}

func openMigrated(t testing.TB, o store.Options) *store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, o)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx, false); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// Fixture is a ready organisation, server, verified domain and SMTP
// credential, as most tests need.
type Fixture struct {
	Org        *store.Organization
	Server     *store.Server
	Domain     *store.Domain
	Credential *store.Credential
	// SMTPKey is the SMTP credential's secret.
	SMTPKey string
}

// NewFixture creates org "acme", server "acme/mail", verified domain
// domainName (DKIM key PEM given by the caller, may be "") and an SMTP
// credential.
func NewFixture(t testing.TB, s *store.Store, domainName, dkimPEM string) Fixture {
	t.Helper()
	ctx := context.Background()
	org, err := s.CreateOrganization(ctx, "Acme", "acme")
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	srv, err := s.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"})
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	dom, err := s.CreateDomain(ctx, srv.ID, store.NewDomain{Name: domainName, VerificationToken: store.RandomToken(16),
		DKIMPrivateKey: dkimPEM, DKIMIdentifierString: "ABCDEF", Verified: true})
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	key := store.RandomToken(12)
	cred, err := s.CreateCredential(ctx, srv.ID, store.NewCredential{Type: store.CredentialSMTP, Name: "main", Key: key})
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return Fixture{Org: org, Server: srv, Domain: dom, Credential: cred, SMTPKey: key}
}
