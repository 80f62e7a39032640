package domain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/domain"
	"github.com/postalgo/postal/daemon/dkim"
	"github.com/postalgo/postal/daemon/resolver/dnstest"
	"github.com/postalgo/postal/daemon/store"
)

func setup(t *testing.T, e *clitest.Env) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"}); err != nil {
		t.Fatal(err)
	}
}

// zone turns printed records into DNS records.
func zone(recs []domain.Record) []dns.RR {
	var out []dns.RR
	for _, r := range recs {
		switch r.Type {
		case "TXT":
			out = append(out, dnstest.TXT(r.Name, r.Value))
		case "CNAME":
			out = append(out, dnstest.CNAME(r.Name, r.Value))
		case "MX":
			out = append(out, dnstest.MX(r.Name, uint16(r.Priority), r.Value))
		}
	}
	return out
}

func TestDomainCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		setup(t, e)
		// example.com publishes what it was told to; other.com nothing.
		first := e.Steps(t, domain.NewCmd, []clitest.Step{
			{Args: []string{"domain", "add", "acme/mail", "Example.COM."}, JSON: true},
			{Args: []string{"domain", "add", "acme/mail", "other.com", "--verified"}, Out: "It is marked verified."},
		})
		var recs []domain.Record
		res := e.Run(t, domain.NewCmd, "domain", "show", "acme/mail", "example.com", "--json")
		var shown domain.Details
		if err := json.Unmarshal([]byte(res.Out), &shown); err != nil {
			t.Fatal(err)
		}
		recs = shown.Records
		srv := dnstest.NewServer(t, zone(recs)...)
		e.Env["DNS_NAMESERVERS"] = srv.Addr()
		e.Env["POSTAL_USE_LOCAL_NS_FOR_DOMAIN_VERIFICATION"] = "true"
		second := e.Steps(t, domain.NewCmd, []clitest.Step{
			{Args: []string{"domain", "add", "acme/mail", "example.com"}, Code: 1, ErrText: "domain example.com is already on acme/mail"},
			{Args: []string{"domain", "add", "acme/mail", "not a domain"}, Code: 2, ErrText: `"not a domain" is not a domain name`},
			{Args: []string{"domain", "add", "acme/nope", "example.net"}, Code: 1, ErrText: "server acme/nope not found"},
			{Args: []string{"domain", "ls", "acme/mail"}, Out: "example.com  no        -    -     -   -            -"},
			{Args: []string{"domain", "check", "acme/mail", "example.com"}, JSON: true},
			{Args: []string{"domain", "check", "acme/mail", "other.com"}, JSON: true},
			{Args: []string{"domain", "check", "acme/mail", "other.com"}, Out: "spf           Missing  No SPF record exists for this domain"},
			{Args: []string{"domain", "check", "acme/mail", "nope.com"}, Code: 1, ErrText: "domain nope.com not found on acme/mail"},
			{Args: []string{"domain", "ls", "acme/mail"}, JSON: true},
			{Args: []string{"domain", "show", "acme/mail", "example.com"}, JSON: true},
			{Args: []string{"domain", "rm", "acme/mail", "other.com"}, JSON: true},
			{Args: []string{"domain", "rm", "acme/mail", "other.com"}, Code: 1, ErrText: "domain other.com not found"},
		})
		clitest.Golden(t, "domain", first+second)
		d, err := e.Store.DomainsNamed(context.Background(), "example.com")
		if err != nil || len(d) != 1 || !d[0].Verified() {
			t.Fatalf("example.com after a passing check: %+v, %v", d, err)
		}
	})
}

// A key made by `domain add` verifies a signature through the TXT record
// that `domain add` printed; the JSON never contains the private key.
func TestDomainAddDKIMRecordVerifiesSignature(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	setup(t, e)
	res := e.Run(t, domain.NewCmd, "domain", "add", "acme/mail", "example.com", "--json")
	if res.Code != 0 {
		t.Fatal(res.RunErr)
	}
	if strings.Contains(res.Out, "PRIVATE KEY") {
		t.Fatal("domain add printed the private key")
	}
	var out domain.Details
	if err := json.Unmarshal([]byte(res.Out), &out); err != nil {
		t.Fatal(err)
	}
	var name, value string
	for _, r := range out.Records {
		if r.Purpose == "dkim" {
			name, value = r.Name, r.Value
		}
	}
	selector, _, _ := strings.Cut(name, "._domainkey.")
	if selector != "postal-"+out.Domain.DKIMIdentifierString || len(out.Domain.DKIMIdentifierString) != 6 ||
		strings.ToUpper(out.Domain.DKIMIdentifierString) != out.Domain.DKIMIdentifierString {
		t.Fatalf("selector %q, identifier %q", selector, out.Domain.DKIMIdentifierString)
	}
	stored, err := e.Store.DomainByID(context.Background(), out.Domain.ID)
	if err != nil {
		t.Fatal(err)
	}
	key, err := dkim.ParsePrivateKey([]byte(stored.DKIMPrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if key.N.BitLen() != dkim.DefaultKeyBits {
		t.Fatalf("key has %d bits", key.N.BitLen())
	}
	signer, err := dkim.NewSigner("example.com", selector, key)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := signer.Sign([]byte("From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	lookups := 0
	verifications, err := msgdkim.VerifyWithOptions(bytes.NewReader(signed), &msgdkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			lookups++
			if domain != name {
				t.Errorf("verifier looked up %q, want %q", domain, name)
			}
			return []string{value}, nil
		},
	})
	if err != nil || len(verifications) != 1 || verifications[0].Err != nil || lookups != 1 {
		t.Fatalf("verify: %v, %+v, %d lookups", err, verifications, lookups)
	}
}

func TestDomainAddDKIMBits(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	setup(t, e)
	res := e.Run(t, domain.NewCmd, "domain", "add", "acme/mail", "small.example", "--dkim-bits", "1024", "--json")
	if res.Code != 0 {
		t.Fatal(res.RunErr)
	}
	var out domain.Details
	if err := json.Unmarshal([]byte(res.Out), &out); err != nil {
		t.Fatal(err)
	}
	stored, err := e.Store.DomainByID(context.Background(), out.Domain.ID)
	if err != nil {
		t.Fatal(err)
	}
	key, err := dkim.ParsePrivateKey([]byte(stored.DKIMPrivateKey))
	if err != nil || key.N.BitLen() != 1024 {
		t.Fatalf("key: %v, %d bits; want 1024", err, key.N.BitLen())
	}
	res = e.Run(t, domain.NewCmd, "domain", "add", "acme/mail", "odd.example", "--dkim-bits", "3000")
	if res.Code != 2 || !strings.Contains(res.RunErr.Error(), "--dkim-bits must be 1024, 2048 or 4096") {
		t.Fatalf("bad size: code %d, %v", res.Code, res.RunErr)
	}
	if _, err := e.Store.ServerDomain(context.Background(), out.Domain.ServerID, "odd.example"); err == nil {
		t.Fatal("a domain was created despite the bad key size")
	}
}
