package dnscheck_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/dkim"
	"github.com/postalgo/postal/daemon/dnscheck"
	"github.com/postalgo/postal/daemon/resolver"
	"github.com/postalgo/postal/daemon/resolver/dnstest"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func testDNS(servers ...string) config.DNS {
	return config.DNS{MXRecords: []string{"mx1.postal.test", "mx2.postal.test"}, SPFInclude: "spf.postal.test",
		ReturnPathDomain: "rp.postal.test", TrackDomain: "track.postal.test", DKIMIdentifier: "postal",
		DomainVerifyPrefix: "postal-verification", CustomReturnPathPrefix: "psrp", Timeout: 2, Nameservers: servers}
}

func testDomain(t *testing.T) *store.Domain {
	t.Helper()
	key, err := dkim.GenerateKey(1024)
	if err != nil {
		t.Fatal(err)
	}
	return &store.Domain{ID: 1, Name: "example.com", VerificationToken: "tok123", DKIMIdentifierString: "ABCDEF",
		DKIMPrivateKey: string(dkim.EncodePrivateKey(key))}
}

// goodZone is everything example.com should publish.
func goodZone(t *testing.T, recs dnscheck.Records) []dns.RR {
	t.Helper()
	return []dns.RR{
		dnstest.TXT("example.com", recs.VerificationValue),
		dnstest.TXT("example.com", recs.SPFValue),
		dnstest.TXT(recs.DKIMName, recs.DKIMValue),
		dnstest.MX("example.com", 10, "mx1.postal.test"),
		dnstest.MX("example.com", 20, "mx2.postal.test"),
		dnstest.CNAME("psrp.example.com", "rp.postal.test"),
	}
}

func TestCheckEachRecord(t *testing.T) {
	d := testDomain(t)
	recs, err := dnscheck.RecordsFor(testDNS(), d)
	if err != nil {
		t.Fatal(err)
	}
	if recs.Selector != "postal-ABCDEF" || recs.DKIMName != "postal-ABCDEF._domainkey.example.com" ||
		recs.SPFValue != "v=spf1 a mx include:spf.postal.test ~all" || recs.VerificationValue != "postal-verification tok123" {
		t.Fatalf("records = %+v", recs)
	}
	spacedDKIM := strings.ReplaceAll(strings.TrimSuffix(recs.DKIMValue, ";"), "; ", ";  ")
	tests := []struct {
		name  string
		edit  func(s *dnstest.Server)
		field func(dnscheck.Result) store.DNSCheck
		want  store.DNSCheck
	}{
		{"verification ok", nil, verification, ok()},
		{"verification missing", func(s *dnstest.Server) { s.Set("example.com", dnstest.TXT("example.com", recs.SPFValue)) }, verification,
			store.DNSCheck{Status: "Missing", Error: `No TXT record "postal-verification tok123" exists at example.com`}},
		{"verification wrong token", func(s *dnstest.Server) {
			s.Set("example.com", dnstest.TXT("example.com", "postal-verification nope"))
		}, verification, store.DNSCheck{Status: "Invalid", Error: `The TXT record "postal-verification nope" at example.com does not match; it should be "postal-verification tok123".`}},
		{"spf ok", nil, spf, ok()},
		{"spf missing", func(s *dnstest.Server) { s.Set("example.com", dnstest.TXT("example.com", recs.VerificationValue)) }, spf,
			store.DNSCheck{Status: "Missing", Error: "No SPF record exists for this domain"}},
		{"spf without include", func(s *dnstest.Server) { s.Set("example.com", dnstest.TXT("example.com", "v=spf1 mx -all")) }, spf,
			store.DNSCheck{Status: "Invalid", Error: "An SPF record exists but it doesn't include spf.postal.test"}},
		{"dkim ok", nil, dkimCheck, ok()},
		{"dkim ok with other spacing and no final semicolon", func(s *dnstest.Server) {
			s.Set(recs.DKIMName, dnstest.TXT(recs.DKIMName, spacedDKIM))
		}, dkimCheck, ok()},
		{"dkim missing", func(s *dnstest.Server) { s.Set(recs.DKIMName) }, dkimCheck,
			store.DNSCheck{Status: "Missing", Error: "No TXT records were returned for postal-ABCDEF._domainkey.example.com"}},
		{"dkim wrong key", func(s *dnstest.Server) {
			s.Set(recs.DKIMName, dnstest.TXT(recs.DKIMName, "v=DKIM1; t=s; h=sha256; p=AAAA;"))
		}, dkimCheck, store.DNSCheck{Status: "Invalid", Error: "The DKIM record at postal-ABCDEF._domainkey.example.com does not match the record we have provided. Please check it has been copied correctly."}},
		{"dkim two records", func(s *dnstest.Server) {
			s.Set(recs.DKIMName, dnstest.TXT(recs.DKIMName, recs.DKIMValue), dnstest.TXT(recs.DKIMName, "v=DKIM1; p=AAAA;"))
		}, dkimCheck, store.DNSCheck{Status: "Invalid", Error: "There are 2 records at postal-ABCDEF._domainkey.example.com. There should only be one."}},
		{"mx ok", nil, mx, ok()},
		{"mx missing", func(s *dnstest.Server) {
			s.Set("example.com", dnstest.TXT("example.com", recs.SPFValue))
		}, mx, store.DNSCheck{Status: "Missing", Error: "There are no MX records for example.com"}},
		{"mx elsewhere", func(s *dnstest.Server) {
			s.Set("example.com", dnstest.MX("example.com", 10, "mx.google.test"))
		}, mx, store.DNSCheck{Status: "Missing", Error: "You have MX records but none of them point to us."}},
		{"mx partly", func(s *dnstest.Server) {
			s.Set("example.com", dnstest.MX("example.com", 10, "MX1.postal.test"))
		}, mx, store.DNSCheck{Status: "Invalid", Error: "MX record for mx2.postal.test is missing and is required."}},
		{"return path ok", nil, returnPath, ok()},
		{"return path missing", func(s *dnstest.Server) { s.Set("psrp.example.com") }, returnPath,
			store.DNSCheck{Status: "Missing", Error: "There is no return path record at psrp.example.com"}},
		{"return path wrong target", func(s *dnstest.Server) {
			s.Set("psrp.example.com", dnstest.CNAME("psrp.example.com", "rp.elsewhere.test"))
		}, returnPath, store.DNSCheck{Status: "Invalid", Error: "There is a CNAME record at psrp.example.com but it points to rp.elsewhere.test which is incorrect. It should point to rp.postal.test."}},
		{"lookup failure is reported, not hidden", func(s *dnstest.Server) { s.ServFail("psrp.example.com") }, returnPath,
			store.DNSCheck{Status: "Invalid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := dnstest.NewServer(t, goodZone(t, recs)...)
			if tt.edit != nil {
				tt.edit(srv)
			}
			r, err := resolver.New(resolver.Options{Nameservers: []string{srv.Addr()}, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			res := dnscheck.Check(context.Background(), r, testDNS(), d)
			got := tt.field(res)
			if tt.want.Error == "" && tt.want.Status == "Invalid" {
				if got.Status != "Invalid" || !strings.Contains(got.Error, "lookup for psrp.example.com failed") {
					t.Fatalf("got %+v, want an Invalid lookup failure", got)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
			if tt.edit == nil && !res.OK() {
				t.Fatalf("good zone: result %+v is not OK", res)
			}
		})
	}
}

func ok() store.DNSCheck                            { return store.DNSCheck{Status: "OK"} }
func verification(r dnscheck.Result) store.DNSCheck { return r.Verification }
func spf(r dnscheck.Result) store.DNSCheck          { return r.SPF }
func dkimCheck(r dnscheck.Result) store.DNSCheck    { return r.DKIM }
func mx(r dnscheck.Result) store.DNSCheck           { return r.MX }
func returnPath(r dnscheck.Result) store.DNSCheck   { return r.ReturnPath }

// With use_local_ns_for_domain_verification off, records are read from the
// domain's own nameservers, found through the local resolver; with it on,
// from the local resolver.
func TestResolversAskAuthoritativeNameservers(t *testing.T) {
	d := testDomain(t)
	recs, err := dnscheck.RecordsFor(testDNS(), d)
	if err != nil {
		t.Fatal(err)
	}
	auth := dnstest.NewServer(t, goodZone(t, recs)...)
	local := dnstest.NewServer(t,
		dnstest.RR("example.com. 300 IN NS ns1.example.net."),
		dnstest.A("ns1.example.net", "127.0.0.1"),
		dnstest.TXT("example.com", "v=spf1 -all"),
	)
	_, port, _ := net.SplitHostPort(auth.Addr())
	tests := []struct {
		name       string
		domain     string
		useLocal   bool
		wantSPF    string
		wantServer *dnstest.Server
	}{
		{"authoritative", "example.com", false, "OK", auth},
		{"subdomain uses parent's nameservers", "mail.example.com", false, "Missing", auth},
		{"local", "example.com", true, "Invalid", local},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := dnscheck.NewResolvers(dnscheck.Options{DNS: testDNS(local.Addr()), UseLocalNS: tt.useLocal, NameserverPort: port})
			if err != nil {
				t.Fatal(err)
			}
			before := len(tt.wantServer.Queries())
			r, err := rs.For(context.Background(), tt.domain)
			if err != nil {
				t.Fatal(err)
			}
			dd := *d
			dd.Name = tt.domain
			res := dnscheck.Check(context.Background(), r, testDNS(), &dd)
			if res.SPF.Status != tt.wantSPF {
				t.Fatalf("SPF = %+v, want %s", res.SPF, tt.wantSPF)
			}
			if len(tt.wantServer.Queries()) == before {
				t.Fatal("the expected nameserver was never asked")
			}
		})
	}
}

func TestCheckAllSavesAndVerifies(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		d := testDomain(t)
		fx := storetest.NewFixture(t, s, "verified.test", d.DKIMPrivateKey)
		dom, err := s.CreateDomain(ctx, fx.Server.ID, store.NewDomain{Name: "example.com", VerificationToken: d.VerificationToken,
			DKIMPrivateKey: d.DKIMPrivateKey, DKIMIdentifierString: d.DKIMIdentifierString})
		if err != nil {
			t.Fatal(err)
		}
		td, err := s.CreateTrackDomain(ctx, fx.Server.ID, store.NewTrackDomain{DomainID: dom.ID, Name: "click"})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := dnscheck.RecordsFor(testDNS(), dom)
		if err != nil {
			t.Fatal(err)
		}
		srv := dnstest.NewServer(t, append(goodZone(t, recs), dnstest.CNAME("click.example.com", "track.postal.test"))...)
		rs, err := dnscheck.NewResolvers(dnscheck.Options{DNS: testDNS(srv.Addr()), UseLocalNS: true})
		if err != nil {
			t.Fatal(err)
		}
		now := time.UnixMicro(time.Now().UnixMicro())
		var problems []string
		err = dnscheck.CheckAll(ctx, s, rs, testDNS(), now, func(_ context.Context, d *store.Domain, _ dnscheck.Result) {
			problems = append(problems, d.Name)
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.DomainByID(ctx, dom.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Verified() || got.SPF.Status != "OK" || got.DKIM.Status != "OK" || !got.DNSCheckedAt.Equal(now) {
			t.Fatalf("example.com after CheckAll = %+v", got)
		}
		if len(problems) != 1 || problems[0] != "verified.test" {
			t.Fatalf("domains reported with problems = %v, want [verified.test]", problems)
		}
		tds, err := s.TrackDomains(ctx, fx.Server.ID)
		if err != nil || len(tds) != 1 || tds[0].ID != td.ID || tds[0].DNS.Status != "OK" {
			t.Fatalf("track domains = %+v, %v", tds, err)
		}
		// Nothing is due again within the hour.
		asked := len(srv.Queries())
		if err := dnscheck.CheckAll(ctx, s, rs, testDNS(), now.Add(30*time.Minute), nil); err != nil {
			t.Fatal(err)
		}
		if n := len(srv.Queries()); n != asked {
			t.Fatalf("a second run within the hour made %d queries", n-asked)
		}
	})
}
