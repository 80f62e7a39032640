package importpostal

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/postalgo/postal/daemon/store"
)

// Kinds of records, in the order they are imported and reported.
var Kinds = []string{"organizations", "servers", "domains", "credentials", "endpoints", "routes", "route_endpoints", "webhooks", "ip_pools",
	"ip_addresses", "ip_pool_rules", "track_domains", "suppressions"}

// Count is how many records of one kind an import created, updated or left
// unchanged.
type Count struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
}

// Change is one record an import created or updated.
type Change struct {
	Action string `json:"action"` // created or updated
	Kind   string `json:"kind"`
	Name   string `json:"name"`
}

// Report is the outcome of an import (or, with DryRun, its plan). It is the
// --json output of `postalctl import-postal`.
type Report struct {
	Source   string            `json:"source"`
	DryRun   bool              `json:"dry_run"`
	Counts   map[string]*Count `json:"counts"`
	Changes  []Change          `json:"changes"`
	Warnings []string          `json:"warnings"`
}

// Changed reports whether anything was (or would be) created or updated.
func (r *Report) Changed() bool { return len(r.Changes) > 0 || r.changedSuppressions() }

func (r *Report) changedSuppressions() bool {
	c := r.Counts["suppressions"]
	return c != nil && c.Created+c.Updated > 0
}

func newReport(source string, dryRun bool) *Report {
	r := &Report{Source: source, DryRun: dryRun, Counts: map[string]*Count{}, Changes: []Change{}, Warnings: []string{}}
	for _, k := range Kinds {
		r.Counts[k] = &Count{}
	}
	return r
}

// note counts one upsert; suppressions are counted, not listed.
func (r *Report) note(kind, name string, ch store.ImportChange) {
	c := r.Counts[kind]
	switch ch {
	case store.ImportCreated:
		c.Created++
	case store.ImportUpdated:
		c.Updated++
	default:
		c.Unchanged++
		return
	}
	if kind != "suppressions" {
		r.Changes = append(r.Changes, Change{Action: string(ch), Kind: kind, Name: name})
	}
}

func (r *Report) warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// uuidOf is the record's Postal uuid, or a stable one made from its table
// and id when Postal left it empty (rows older than the uuid column).
func uuidOf(uuid, table string, id int64) string {
	if uuid != "" {
		return uuid
	}
	return store.ImportUUID("postal", table, strconv.FormatInt(id, 10))
}

// Apply writes snap into st in one transaction (rolled back when dryRun) and
// returns what changed. Records Postal has that this installation cannot
// hold yet (additional route endpoints) are reported as warnings.
func Apply(ctx context.Context, st *store.Store, snap *Snapshot, source string, dryRun bool) (*Report, error) {
	rep := newReport(source, dryRun)
	rep.Warnings = append(rep.Warnings, snap.Warnings...)
	err := st.Import(ctx, dryRun, func(im *store.Import) error {
		a := &applier{im: im, rep: rep, snap: snap}
		return a.run(ctx)
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

type applier struct {
	im   *store.Import
	rep  *Report
	snap *Snapshot

	pools, orgs, servers, https, smtps, addrs, routes map[int64]int64
	serverPath                                        map[int64]string
	serverUUID                                        map[int64]string
	// domains maps a Postal domain id to its local copy on each local
	// server (organisation domains are copied to every server of the org).
	domains map[int64]map[int64]int64
}

func (a *applier) run(ctx context.Context) error {
	a.pools, a.orgs, a.servers = map[int64]int64{}, map[int64]int64{}, map[int64]int64{}
	a.https, a.smtps, a.addrs, a.routes = map[int64]int64{}, map[int64]int64{}, map[int64]int64{}, map[int64]int64{}
	a.serverPath, a.serverUUID, a.domains = map[int64]string{}, map[int64]string{}, map[int64]map[int64]int64{}
	orgPerm := map[int64]string{}
	for _, p := range a.snap.IPPools {
		id, ch, err := a.im.IPPool(ctx, store.ImportIPPool{UUID: uuidOf(p.UUID, "ip_pools", p.ID), Name: p.Name, Default: p.Default,
			CreatedAt: p.CreatedAt})
		if err != nil {
			return err
		}
		a.pools[p.ID] = id
		a.rep.note("ip_pools", p.Name, ch)
	}
	for _, ip := range a.snap.IPAddresses {
		pool, ok := a.pools[ip.PoolID]
		if !ok || ip.IPv4 == "" {
			a.rep.warn("IP address %d (%s): no pool or no IPv4; skipped", ip.ID, ip.IPv4)
			continue
		}
		_, ch, err := a.im.IPAddress(ctx, store.ImportIPAddress{PoolID: pool, IPv4: ip.IPv4, IPv6: ip.IPv6, Hostname: ip.Hostname,
			Priority: ip.Priority, CreatedAt: ip.CreatedAt})
		if err != nil {
			return err
		}
		a.rep.note("ip_addresses", ip.IPv4, ch)
	}
	for _, o := range a.snap.Organizations {
		id, ch, err := a.im.Organization(ctx, store.ImportOrganization{UUID: uuidOf(o.UUID, "organizations", o.ID), Name: o.Name,
			Permalink: o.Permalink, TimeZone: o.TimeZone, SuspendedAt: o.SuspendedAt, SuspensionReason: o.SuspensionReason,
			CreatedAt: o.CreatedAt})
		if err != nil {
			return err
		}
		a.orgs[o.ID], orgPerm[o.ID] = id, o.Permalink
		a.rep.note("organizations", o.Permalink, ch)
	}
	for _, s := range a.snap.Servers {
		path := orgPerm[s.OrganizationID] + "/" + s.Permalink
		var pool int64
		if s.IPPoolID != 0 {
			pool = a.pools[s.IPPoolID]
		}
		uuid := uuidOf(s.UUID, "servers", s.ID)
		id, ch, err := a.im.Server(ctx, store.ImportServer{UUID: uuid, OrganizationID: a.orgs[s.OrganizationID], Name: s.Name,
			Permalink: s.Permalink, Mode: s.Mode, Token: s.Token, IPPoolID: pool, SendLimit: s.SendLimit,
			MessageRetentionDays: s.MessageRetentionDays, RawMessageRetentionDays: s.RawMessageRetentionDays,
			RawMessageRetentionSize: s.RawMessageRetentionSize, SpamThreshold: s.SpamThreshold,
			SpamFailureThreshold: s.SpamFailureThreshold, OutboundSpamThreshold: s.OutboundSpamThreshold,
			PrivacyMode: s.PrivacyMode, AllowSender: s.AllowSender, LogSMTPData: s.LogSMTPData, SuspendedAt: s.SuspendedAt,
			SuspensionReason: s.SuspensionReason, CreatedAt: s.CreatedAt})
		if err != nil {
			return err
		}
		a.servers[s.ID], a.serverPath[s.ID], a.serverUUID[s.ID] = id, path, uuid
		a.rep.note("servers", path, ch)
	}
	if err := a.importDomains(ctx); err != nil {
		return err
	}
	if err := a.importCredentials(ctx); err != nil {
		return err
	}
	if err := a.importEndpointsAndRoutes(ctx); err != nil {
		return err
	}
	for _, w := range a.snap.Webhooks {
		_, ch, err := a.im.Webhook(ctx, store.ImportWebhook{UUID: uuidOf(w.UUID, "webhooks", w.ID), ServerID: a.servers[w.ServerID],
			Name: w.Name, URL: w.URL, AllEvents: w.AllEvents, Enabled: w.Enabled, Sign: w.Sign, Events: w.Events, CreatedAt: w.CreatedAt})
		if err != nil {
			return err
		}
		a.rep.note("webhooks", a.serverPath[w.ServerID]+" "+w.Name, ch)
	}
	for _, ru := range a.snap.IPPoolRules {
		pool, ok := a.pools[ru.PoolID]
		if !ok || len(ru.From)+len(ru.To) == 0 {
			a.rep.warn("IP pool rule %s: no pool or nothing to match; skipped", ru.UUID)
			continue
		}
		rule := store.ImportIPPoolRule{UUID: uuidOf(ru.UUID, "ip_pool_rules", ru.ID), PoolID: pool, From: ru.From, To: ru.To,
			CreatedAt: ru.CreatedAt}
		owner := orgPerm[ru.OwnerID]
		if ru.OwnerType == "Server" {
			rule.ServerID, owner = a.servers[ru.OwnerID], a.serverPath[ru.OwnerID]
		} else {
			rule.OrganizationID = a.orgs[ru.OwnerID]
		}
		_, ch, err := a.im.IPPoolRule(ctx, rule)
		if err != nil {
			return err
		}
		a.rep.note("ip_pool_rules", owner+" -> "+ru.UUID, ch)
	}
	for _, td := range a.snap.TrackDomains {
		srv := a.servers[td.ServerID]
		dom := a.domains[td.DomainID][srv]
		if dom == 0 {
			a.rep.warn("track domain %s: its domain is not on server %s; skipped", td.Name, a.serverPath[td.ServerID])
			continue
		}
		_, ch, err := a.im.TrackDomain(ctx, store.ImportTrackDomain{UUID: uuidOf(td.UUID, "track_domains", td.ID), ServerID: srv,
			DomainID: dom, Name: td.Name, SSLEnabled: td.SSLEnabled, TrackClicks: td.TrackClicks, TrackLoads: td.TrackLoads,
			ExcludedClickDomains: td.ExcludedClickDomains, DNS: store.DNSCheck{Status: td.DNSStatus, Error: td.DNSError},
			DNSCheckedAt: td.DNSCheckedAt, CreatedAt: td.CreatedAt})
		if err != nil {
			return err
		}
		a.rep.note("track_domains", td.Name, ch)
	}
	for _, s := range a.snap.Servers {
		for _, sp := range a.snap.Suppressions[s.ID] {
			_, ch, err := a.im.Suppression(ctx, store.ImportSuppression{ServerID: a.servers[s.ID], Type: sp.Type, Address: sp.Address,
				Reason: sp.Reason, Timestamp: sp.Timestamp, KeepUntil: sp.KeepUntil})
			if err != nil {
				return err
			}
			a.rep.note("suppressions", sp.Address, ch)
		}
	}
	return nil
}

func (a *applier) importDomains(ctx context.Context) error {
	serversOf := map[int64][]int64{} // Postal org id -> Postal server ids
	for _, s := range a.snap.Servers {
		serversOf[s.OrganizationID] = append(serversOf[s.OrganizationID], s.ID)
	}
	// Server domains first, so an organisation domain of the same name as
	// one a server has already is not copied onto that server (the
	// server's own one serves its routes and track domains).
	own := map[int64]map[string]int64{} // Postal server id -> domain name -> local id
	ordered := make([]Domain, 0, len(a.snap.Domains))
	for _, d := range a.snap.Domains {
		if d.OwnerType == "Server" {
			ordered = append(ordered, d)
		}
	}
	for _, d := range a.snap.Domains {
		if d.OwnerType == "Organization" {
			ordered = append(ordered, d)
		}
	}
	for _, d := range ordered {
		owners := []int64{d.OwnerID}
		if d.OwnerType == "Organization" {
			owners = serversOf[d.OwnerID]
			if len(owners) > 0 {
				a.rep.warn("domain %s belongs to its organisation in Postal; copied to each of its %d server(s) (same DKIM key)",
					d.Name, len(owners))
			}
		}
		a.domains[d.ID] = map[int64]int64{}
		for _, ps := range owners {
			if id, dup := own[ps][strings.ToLower(d.Name)]; dup && d.OwnerType == "Organization" {
				a.rep.warn("organisation domain %s: server %s has its own domain of that name; kept that one", d.Name, a.serverPath[ps])
				a.domains[d.ID][a.servers[ps]] = id
				continue
			}
			uuid := uuidOf(d.UUID, "domains", d.ID)
			if d.OwnerType == "Organization" {
				uuid = store.ImportUUID("postal-organization-domain", uuid, a.serverUUID[ps])
			}
			id, ch, err := a.im.Domain(ctx, store.ImportDomain{UUID: uuid, ServerID: a.servers[ps], Name: d.Name,
				VerificationToken: d.VerificationToken, VerificationMethod: d.VerificationMethod, VerifiedAt: d.VerifiedAt,
				DKIMPrivateKey: d.DKIMPrivateKey, DKIMIdentifierString: d.DKIMIdentifierString, Outgoing: d.Outgoing,
				Incoming: d.Incoming, UseForAny: d.UseForAny,
				SPF:          store.DNSCheck{Status: d.SPFStatus, Error: d.SPFError},
				DKIM:         store.DNSCheck{Status: d.DKIMStatus, Error: d.DKIMError},
				MX:           store.DNSCheck{Status: d.MXStatus, Error: d.MXError},
				ReturnPath:   store.DNSCheck{Status: d.ReturnPathStatus, Error: d.ReturnPathError},
				DNSCheckedAt: d.DNSCheckedAt, CreatedAt: d.CreatedAt})
			if err != nil {
				return err
			}
			a.domains[d.ID][a.servers[ps]] = id
			if d.OwnerType == "Server" {
				if own[ps] == nil {
					own[ps] = map[string]int64{}
				}
				own[ps][strings.ToLower(d.Name)] = id
			}
			a.rep.note("domains", a.serverPath[ps]+" "+d.Name, ch)
		}
	}
	return nil
}

func (a *applier) importCredentials(ctx context.Context) error {
	for _, c := range a.snap.Credentials {
		switch {
		case c.Type != store.CredentialSMTP && c.Type != store.CredentialAPI && c.Type != store.CredentialSMTPIP:
			a.rep.warn("credential %q on %s: type %q is not SMTP, API or SMTP-IP; skipped", c.Name, a.serverPath[c.ServerID], c.Type)
			continue
		case c.Key == "":
			a.rep.warn("credential %q on %s: no key; skipped", c.Name, a.serverPath[c.ServerID])
			continue
		}
		_, ch, err := a.im.Credential(ctx, store.ImportCredential{UUID: uuidOf(c.UUID, "credentials", c.ID),
			ServerID: a.servers[c.ServerID], Type: c.Type, Name: c.Name, Key: c.Key, Hold: c.Hold, LastUsedAt: c.LastUsedAt,
			CreatedAt: c.CreatedAt})
		if err != nil {
			return err
		}
		a.rep.note("credentials", a.serverPath[c.ServerID]+" "+c.Type+" "+c.Name, ch)
	}
	return nil
}

func (a *applier) importEndpointsAndRoutes(ctx context.Context) error {
	for _, e := range a.snap.HTTPEndpoints {
		id, ch, err := a.im.HTTPEndpoint(ctx, store.ImportHTTPEndpoint{UUID: uuidOf(e.UUID, "http_endpoints", e.ID),
			ServerID: a.servers[e.ServerID], Name: e.Name, URL: e.URL, Encoding: e.Encoding, Format: e.Format,
			StripReplies: e.StripReplies, IncludeAttachments: e.IncludeAttachments, Timeout: e.Timeout, CreatedAt: e.CreatedAt})
		if err != nil {
			return err
		}
		a.https[e.ID] = id
		a.rep.note("endpoints", a.serverPath[e.ServerID]+" HTTP "+e.Name, ch)
	}
	for _, e := range a.snap.SMTPEndpoints {
		id, ch, err := a.im.SMTPEndpoint(ctx, store.ImportSMTPEndpoint{UUID: uuidOf(e.UUID, "smtp_endpoints", e.ID),
			ServerID: a.servers[e.ServerID], Name: e.Name, Hostname: e.Hostname, Port: e.Port, SSLMode: e.SSLMode, CreatedAt: e.CreatedAt})
		if err != nil {
			return err
		}
		a.smtps[e.ID] = id
		a.rep.note("endpoints", a.serverPath[e.ServerID]+" SMTP "+e.Name, ch)
	}
	for _, e := range a.snap.AddrEndpoints {
		id, ch, err := a.im.AddressEndpoint(ctx, store.ImportAddressEndpoint{UUID: uuidOf(e.UUID, "address_endpoints", e.ID),
			ServerID: a.servers[e.ServerID], Address: e.Address, CreatedAt: e.CreatedAt})
		if err != nil {
			return err
		}
		a.addrs[e.ID] = id
		a.rep.note("endpoints", a.serverPath[e.ServerID]+" address "+e.Address, ch)
	}
	for _, rt := range a.snap.Routes {
		srv := a.servers[rt.ServerID]
		var dom int64
		if rt.DomainID != 0 {
			if dom = a.domains[rt.DomainID][srv]; dom == 0 {
				a.rep.warn("route %s on %s: its domain is not on that server; skipped", rt.Name, a.serverPath[rt.ServerID])
				continue
			}
		}
		var eid int64
		switch rt.EndpointType {
		case store.EndpointHTTP:
			eid = a.https[rt.EndpointID]
		case store.EndpointSMTP:
			eid = a.smtps[rt.EndpointID]
		case store.EndpointAddress:
			eid = a.addrs[rt.EndpointID]
		}
		if rt.EndpointType != "" && eid == 0 {
			a.rep.warn("route %s on %s: endpoint %s %d not found; imported without an endpoint", rt.Name, a.serverPath[rt.ServerID],
				rt.EndpointType, rt.EndpointID)
		}
		rid, ch, err := a.im.Route(ctx, store.ImportRoute{UUID: uuidOf(rt.UUID, "routes", rt.ID), ServerID: srv, DomainID: dom,
			Name: rt.Name, Token: rt.Token, Mode: rt.Mode, SpamMode: rt.SpamMode, EndpointType: rt.EndpointType, EndpointID: eid,
			CreatedAt: rt.CreatedAt})
		if err != nil {
			return err
		}
		a.rep.note("routes", a.serverPath[rt.ServerID]+" "+rt.Name, ch)
		a.routes[rt.ID] = rid
	}
	names := map[int64]Route{}
	for _, rt := range a.snap.Routes {
		names[rt.ID] = rt
	}
	for _, x := range a.snap.ExtraEndpoints {
		rt, ok := names[x.RouteID]
		rid := a.routes[x.RouteID]
		if !ok || rid == 0 {
			continue // the route is deleted, or was skipped with a warning
		}
		var eid int64
		switch x.EndpointType {
		case store.EndpointHTTP:
			eid = a.https[x.EndpointID]
		case store.EndpointSMTP:
			eid = a.smtps[x.EndpointID]
		case store.EndpointAddress:
			eid = a.addrs[x.EndpointID]
		}
		if eid == 0 {
			a.rep.warn("route %s on %s: additional endpoint %s %d not found; skipped", rt.Name, a.serverPath[rt.ServerID],
				x.EndpointType, x.EndpointID)
			continue
		}
		_, ch, err := a.im.RouteEndpoint(ctx, rid, x.EndpointType, eid)
		if err != nil {
			return err
		}
		a.rep.note("route_endpoints", a.serverPath[rt.ServerID]+" "+rt.Name+" "+x.EndpointType, ch)
	}
	return nil
}
