package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/store"
)

// RecheckAfter is how old a check must be before CheckAll repeats it, as
// Postal's check-all-DNS task.
const RecheckAfter = time.Hour

// checkPage bounds the domains loaded at once; checkParallel bounds the
// domains checked at once.
const (
	checkPage     = 200
	checkParallel = 8
)

// Store is what CheckAll reads and writes.
type Store interface {
	DomainsDueForDNSCheck(ctx context.Context, checkedBefore time.Time, afterID int64, limit int) ([]*store.Domain, error)
	SaveDomainDNSCheck(ctx context.Context, id int64, c store.DomainDNSCheck) (*store.Domain, error)
	TrackDomainsDueForDNSCheck(ctx context.Context, checkedBefore time.Time, afterID int64, limit int) ([]*store.TrackDomain, error)
	SaveTrackDomainDNSCheck(ctx context.Context, id int64, c store.DNSCheck, checkedAt time.Time) error
}

// DomainLookups gives the resolver that checks a domain (*Resolvers).
type DomainLookups interface {
	For(ctx context.Context, domain string) (Lookup, error)
}

// Save checks d and stores the result, marking d verified when its
// verification record is published. It returns the result and the domain
// as stored.
func Save(ctx context.Context, st Store, rs DomainLookups, cfg config.DNS, d *store.Domain, now time.Time) (Result, *store.Domain, error) {
	r, err := rs.For(ctx, d.Name)
	if err != nil {
		return Result{}, nil, err
	}
	res := Check(ctx, r, cfg, d)
	saved, err := st.SaveDomainDNSCheck(ctx, d.ID, store.DomainDNSCheck{SPF: res.SPF, DKIM: res.DKIM, MX: res.MX,
		ReturnPath: res.ReturnPath, Verified: res.Verification.Status == store.DNSStatusOK, CheckedAt: now})
	if err != nil {
		return res, nil, err
	}
	return res, saved, nil
}

// CheckAll checks every domain and track domain whose last check is older
// than RecheckAfter (or that was never checked) and stores the results.
// onProblem, when not nil, is called for each domain whose DNS is not OK
// (the hook for the DomainDNSError webhook). It returns the errors of the
// domains it could not check or save, joined; the others are saved.
func CheckAll(ctx context.Context, st Store, rs DomainLookups, cfg config.DNS, now time.Time,
	onProblem func(context.Context, *store.Domain, Result)) error {
	before := now.Add(-RecheckAfter)
	var (
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for after := int64(0); ; {
		page, err := st.DomainsDueForDNSCheck(ctx, before, after, checkPage)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		var g errgroup.Group
		g.SetLimit(checkParallel)
		for _, d := range page {
			after = d.ID
			g.Go(func() error {
				res, saved, err := Save(ctx, st, rs, cfg, d, now)
				if err != nil {
					fail(fmt.Errorf("check %s: %w", d.Name, err))
					return nil
				}
				if !res.OK() && onProblem != nil {
					onProblem(ctx, saved, res)
				}
				return nil
			})
		}
		_ = g.Wait()
		if len(page) < checkPage || ctx.Err() != nil {
			break
		}
	}
	for after := int64(0); ctx.Err() == nil; {
		page, err := st.TrackDomainsDueForDNSCheck(ctx, before, after, checkPage)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, td := range page {
			after = td.ID
			r, err := rs.For(ctx, td.Domain)
			if err != nil {
				fail(fmt.Errorf("check %s: %w", td.FullName(), err))
				continue
			}
			res := CheckTrackDomain(ctx, r, td.FullName(), cfg.TrackDomain)
			if err := st.SaveTrackDomainDNSCheck(ctx, td.ID, res, now); err != nil {
				fail(fmt.Errorf("check %s: %w", td.FullName(), err))
			}
		}
		if len(page) < checkPage {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
