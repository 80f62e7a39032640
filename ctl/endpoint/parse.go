package endpoint

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/smtpclient"
	"github.com/postalgo/postal/daemon/store"
)

// Flags are the endpoint options shared by `endpoint add` and `route add`.
type Flags struct {
	// HTTP endpoint options (Postal's defaults when empty or false).
	Format, Encoding string
	StripReplies     bool
	NoAttachments    bool
	Timeout          int
	// SSLMode of an SMTP endpoint: none, auto, starttls or tls.
	SSLMode string
}

// AddFlags declares the endpoint option flags on cmd.
func AddFlags(cmd *cobra.Command, o *Flags) {
	cmd.Flags().StringVar(&o.Format, "format", "", "HTTP endpoint payload: hash or raw (default hash)")
	cmd.Flags().StringVar(&o.Encoding, "encoding", "", "HTTP endpoint body: json or form (default json)")
	cmd.Flags().BoolVar(&o.StripReplies, "strip-replies", false, "HTTP endpoint: move quoted replies out of plain_body")
	cmd.Flags().BoolVar(&o.NoAttachments, "no-attachments", false, "HTTP endpoint: leave attachments out of the payload")
	cmd.Flags().IntVar(&o.Timeout, "timeout", 0, "HTTP endpoint timeout in seconds, 5 to 60 (default 5)")
	cmd.Flags().StringVar(&o.SSLMode, "ssl-mode", "", "SMTP endpoint TLS: none, auto, starttls (required) or tls (default auto)")
}

// Parse reads http:URL, smtp:HOST:PORT or address:ADDRESS; anything
// without a colon is the UUID of an existing endpoint.
func Parse(s string) (*store.NewEndpoint, error) {
	if !strings.Contains(s, ":") && s != "" {
		return &store.NewEndpoint{UUID: s}, nil
	}
	v := validator.New()
	kind, rest, _ := strings.Cut(s, ":")
	switch strings.ToLower(kind) {
	case "http":
		u, err := url.Parse(rest)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || v.Var(rest, "url") != nil {
			return nil, cli.Usagef("--endpoint %q: %q is not an http(s) URL", s, rest)
		}
		return &store.NewEndpoint{Type: store.EndpointHTTP, URL: rest}, nil
	case "smtp":
		host, portText, err := net.SplitHostPort(rest)
		port, perr := strconv.Atoi(portText)
		if err != nil || perr != nil || port < 1 || port > 65535 {
			return nil, cli.Usagef("--endpoint %q: want smtp:HOST:PORT with a port from 1 to 65535", s)
		}
		if v.Var(host, "hostname_rfc1123") != nil && v.Var(host, "ip") != nil {
			return nil, cli.Usagef("--endpoint %q: %q is not a host name or IP address", s, host)
		}
		return &store.NewEndpoint{Type: store.EndpointSMTP, Hostname: strings.ToLower(host), Port: port}, nil
	case "address":
		if v.Var(rest, "required,email") != nil {
			return nil, cli.Usagef("--endpoint %q: %q is not an e-mail address", s, rest)
		}
		return &store.NewEndpoint{Type: store.EndpointAddress, Address: rest}, nil
	}
	return nil, cli.Usagef("--endpoint %q: want http:URL, smtp:HOST:PORT, address:ADDRESS or an endpoint UUID", s)
}

// Apply checks the flags against ep's type and sets them on ep.
func (o *Flags) Apply(ep *store.NewEndpoint) error {
	if ep != nil && ep.UUID != "" {
		ep = nil // an existing endpoint keeps its settings
	}
	httpFlags := o.Format != "" || o.Encoding != "" || o.StripReplies || o.NoAttachments || o.Timeout != 0
	if httpFlags && (ep == nil || ep.Type != store.EndpointHTTP) {
		return cli.Usagef("--format, --encoding, --strip-replies, --no-attachments and --timeout need an http: endpoint")
	}
	if o.SSLMode != "" && (ep == nil || ep.Type != store.EndpointSMTP) {
		return cli.Usagef("--ssl-mode needs an smtp: endpoint")
	}
	if ep == nil {
		return nil
	}
	switch strings.ToLower(o.Format) {
	case "":
	case "hash":
		ep.Format = store.FormatHash
	case "raw", "rawmessage":
		ep.Format = store.FormatRawMessage
	default:
		return cli.Usagef("--format %q: want hash or raw", o.Format)
	}
	switch strings.ToLower(o.Encoding) {
	case "":
	case "json", "bodyasjson":
		ep.Encoding = store.EncodingBodyAsJSON
	case "form", "formdata":
		ep.Encoding = store.EncodingFormData
	default:
		return cli.Usagef("--encoding %q: want json or form", o.Encoding)
	}
	if o.Timeout != 0 && (o.Timeout < 5 || o.Timeout > 60) {
		return cli.Usagef("--timeout %d: want 5 to 60 seconds", o.Timeout)
	}
	ep.StripReplies, ep.ExcludeAttachments, ep.Timeout = o.StripReplies, o.NoAttachments, o.Timeout
	if o.SSLMode != "" {
		m, err := smtpclient.ParseSSLMode(o.SSLMode)
		if err != nil {
			return cli.Usagef("--ssl-mode %q: want none, auto, starttls or tls", o.SSLMode)
		}
		ep.SSLMode = string(m)
	}
	return nil
}
