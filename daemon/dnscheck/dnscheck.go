// Package dnscheck checks that a domain publishes the DNS records postal
// asks for (ownership verification TXT, SPF include, DKIM key, MX and the
// return-path CNAME) and that tracking domains point at dns.track_domain,
// with Postal's statuses (OK, Missing, Invalid) and messages.
//
// Contract: Check and CheckTrackDomain never fail; a lookup that cannot be
// answered (timeout, SERVFAIL) gives that record the status Invalid with an
// error saying the lookup failed, so a later run can correct it. Lookups go
// to the domain's own authoritative nameservers, found through the local
// resolver, unless postal.use_local_ns_for_domain_verification is set (as in
// Postal); when no authoritative nameserver can be found, the local resolver
// answers. CheckAll re-checks, page by page, every domain and track domain
// not checked within the last hour and stores the results.
package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/dkim"
	"github.com/postalgo/postal/daemon/resolver"
	"github.com/postalgo/postal/daemon/store"
)

// Lookup is the part of *resolver.Resolver the checks use.
type Lookup interface {
	TXT(ctx context.Context, name string) ([]string, error)
	MX(ctx context.Context, domain string) ([]resolver.MX, error)
	CNAME(ctx context.Context, name string) (string, error)
}

// Result is the outcome of checking one domain.
type Result struct {
	// Verification is OK when the verification TXT record is published.
	Verification store.DNSCheck `json:"verification"`
	SPF          store.DNSCheck `json:"spf"`
	DKIM         store.DNSCheck `json:"dkim"`
	MX           store.DNSCheck `json:"mx"`
	ReturnPath   store.DNSCheck `json:"return_path"`
}

// OK reports whether the domain is ready to send, as Postal judges it: SPF
// and DKIM OK, MX and return path OK or Missing (both are optional).
func (r Result) OK() bool {
	optional := func(c store.DNSCheck) bool {
		return c.Status == store.DNSStatusOK || c.Status == store.DNSStatusMissing
	}
	return r.SPF.Status == store.DNSStatusOK && r.DKIM.Status == store.DNSStatusOK && optional(r.MX) && optional(r.ReturnPath)
}

// Records are the values a domain is asked to publish.
type Records struct {
	// VerificationName and VerificationValue: TXT "<domain_verify_prefix> <token>" at the domain.
	VerificationName, VerificationValue string
	// SPFName and SPFValue: TXT "v=spf1 a mx include:<spf_include> ~all" at the domain.
	SPFName, SPFValue string
	// Selector is "<dkim_identifier>-<DKIMIdentifierString>".
	Selector string
	// DKIMName and DKIMValue: TXT at "<selector>._domainkey.<domain>"; DKIMValue
	// is "" when the domain's key cannot be read.
	DKIMName, DKIMValue string
	// ReturnPathName and ReturnPathTarget: CNAME "<custom_return_path_prefix>.<domain>" -> return_path_domain.
	ReturnPathName, ReturnPathTarget string
	// MX are the dns.mx_records, each published at the domain.
	MX []string
}

// RecordsFor returns the records domain d must publish under cfg. It fails
// only when d's DKIM private key cannot be parsed.
func RecordsFor(cfg config.DNS, d *store.Domain) (Records, error) {
	sel := cfg.DKIMIdentifier + "-" + d.DKIMIdentifierString
	r := Records{
		VerificationName:  d.Name,
		VerificationValue: cfg.DomainVerifyPrefix + " " + d.VerificationToken,
		SPFName:           d.Name,
		SPFValue:          "v=spf1 a mx include:" + cfg.SPFInclude + " ~all",
		Selector:          sel,
		DKIMName:          dkim.RecordName(sel, d.Name),
		ReturnPathName:    cfg.CustomReturnPathPrefix + "." + d.Name,
		ReturnPathTarget:  cfg.ReturnPathDomain,
		MX:                slices.Clone(cfg.MXRecords),
	}
	key, err := dkim.ParsePrivateKey([]byte(d.DKIMPrivateKey))
	if err != nil {
		return r, fmt.Errorf("DKIM key of %s: %w", d.Name, err)
	}
	r.DKIMValue = dkim.RecordValue(&key.PublicKey)
	return r, nil
}

// Check looks up every record of d through r and judges it against cfg.
func Check(ctx context.Context, r Lookup, cfg config.DNS, d *store.Domain) Result {
	recs, keyErr := RecordsFor(cfg, d)
	res := Result{
		Verification: checkVerification(ctx, r, recs),
		SPF:          checkSPF(ctx, r, d.Name, cfg.SPFInclude),
		MX:           checkMX(ctx, r, d.Name, cfg.MXRecords),
		ReturnPath:   checkCNAME(ctx, r, recs.ReturnPathName, cfg.ReturnPathDomain, "return path record"),
	}
	if keyErr != nil {
		res.DKIM = invalid("The domain has no usable DKIM key (%v); remove and add the domain again.", keyErr)
	} else {
		res.DKIM = checkDKIM(ctx, r, recs.DKIMName, recs.DKIMValue)
	}
	return res
}

// CheckTrackDomain checks that name is a CNAME to trackDomain (dns.track_domain).
func CheckTrackDomain(ctx context.Context, r Lookup, name, trackDomain string) store.DNSCheck {
	return checkCNAME(ctx, r, name, trackDomain, "record")
}

func ok() store.DNSCheck { return store.DNSCheck{Status: store.DNSStatusOK} }

func missing(format string, args ...any) store.DNSCheck {
	return store.DNSCheck{Status: store.DNSStatusMissing, Error: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) store.DNSCheck {
	return store.DNSCheck{Status: store.DNSStatusInvalid, Error: fmt.Sprintf(format, args...)}
}

// lookupFailed is the result for a lookup that could not be answered.
func lookupFailed(typ, name string, err error) store.DNSCheck {
	return invalid("The %s lookup for %s failed (%v); it will be retried.", typ, name, err)
}

// txt returns the TXT records at name; a name that does not exist has none.
func txt(ctx context.Context, r Lookup, name string) ([]string, error) {
	recs, err := r.TXT(ctx, name)
	if errors.Is(err, resolver.ErrNotFound) {
		return nil, nil
	}
	out := make([]string, 0, len(recs))
	for _, rec := range recs {
		out = append(out, strings.TrimSpace(rec))
	}
	return out, err
}

func checkVerification(ctx context.Context, r Lookup, recs Records) store.DNSCheck {
	found, err := txt(ctx, r, recs.VerificationName)
	if err != nil {
		return lookupFailed("TXT", recs.VerificationName, err)
	}
	if slices.Contains(found, recs.VerificationValue) {
		return ok()
	}
	prefix, _, _ := strings.Cut(recs.VerificationValue, " ")
	for _, f := range found {
		if strings.HasPrefix(f, prefix+" ") {
			return invalid("The TXT record %q at %s does not match; it should be %q.", f, recs.VerificationName, recs.VerificationValue)
		}
	}
	return missing("No TXT record %q exists at %s", recs.VerificationValue, recs.VerificationName)
}

func checkSPF(ctx context.Context, r Lookup, domain, include string) store.DNSCheck {
	found, err := txt(ctx, r, domain)
	if err != nil {
		return lookupFailed("TXT", domain, err)
	}
	var spf []string
	for _, f := range found {
		if strings.HasPrefix(f, "v=spf1") {
			spf = append(spf, f)
		}
	}
	if len(spf) == 0 {
		return missing("No SPF record exists for this domain")
	}
	want := "include:" + strings.ToLower(include)
	for _, rec := range spf {
		if slices.Contains(strings.Fields(strings.ToLower(rec)), want) {
			return ok()
		}
	}
	return invalid("An SPF record exists but it doesn't include %s", include)
}

// squash removes all white space, for comparisons that ignore it.
func squash(s string) string {
	return strings.Join(strings.Fields(s), "")
}

func checkDKIM(ctx context.Context, r Lookup, name, want string) store.DNSCheck {
	found, err := txt(ctx, r, name)
	if err != nil {
		return lookupFailed("TXT", name, err)
	}
	switch {
	case len(found) == 0:
		return missing("No TXT records were returned for %s", name)
	case len(found) > 1:
		return invalid("There are %d records at %s. There should only be one.", len(found), name)
	}
	got := squash(found[0])
	if !strings.HasSuffix(got, ";") {
		got += ";"
	}
	if got != squash(want) {
		return invalid("The DKIM record at %s does not match the record we have provided. Please check it has been copied correctly.", name)
	}
	return ok()
}

func checkMX(ctx context.Context, r Lookup, domain string, want []string) store.DNSCheck {
	found, err := r.MX(ctx, domain)
	switch {
	case errors.Is(err, resolver.ErrNotFound), errors.Is(err, resolver.ErrNullMX):
		found, err = nil, nil
	case err != nil:
		return lookupFailed("MX", domain, err)
	}
	if len(found) == 0 {
		return missing("There are no MX records for %s", domain)
	}
	hosts := make([]string, 0, len(found))
	for _, mx := range found {
		hosts = append(hosts, mx.Host)
	}
	var absent []string
	for _, w := range want {
		if !slices.Contains(hosts, strings.ToLower(strings.TrimSuffix(w, "."))) {
			absent = append(absent, w)
		}
	}
	switch {
	case len(absent) == 0:
		return ok()
	case len(absent) == len(want):
		return missing("You have MX records but none of them point to us.")
	case len(absent) == 1:
		return invalid("MX record for %s is missing and is required.", absent[0])
	default:
		return invalid("MX records for %s are missing and are required.", sentence(absent))
	}
}

// sentence joins items as "a", "a and b" or "a, b and c".
func sentence(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func checkCNAME(ctx context.Context, r Lookup, name, target, what string) store.DNSCheck {
	got, err := r.CNAME(ctx, name)
	switch {
	case errors.Is(err, resolver.ErrNotFound):
		return missing("There is no %s at %s", what, name)
	case err != nil:
		return lookupFailed("CNAME", name, err)
	case got == strings.ToLower(strings.TrimSuffix(target, ".")):
		return ok()
	default:
		return invalid("There is a CNAME record at %s but it points to %s which is incorrect. It should point to %s.", name, got, target)
	}
}
