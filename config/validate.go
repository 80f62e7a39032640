package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/go-playground/validator/v10"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path is the YAML key path ("smtp_server.default_port", "postal.smtp_relays[0]"),
	// the environment variable for a bad environment value, or the file name for a
	// problem with the file as a whole.
	Path string
	// Message says what is wrong, in words an operator can act on.
	Message string
}

// Problems is every problem found in a configuration. Load and Validate return it as
// their error so that all problems are reported at once.
type Problems struct {
	// List holds the problems; Error prints them sorted by path.
	List []Problem
}

// Error returns one problem per line, "path: message", sorted by path then message. It
// does not reorder List.
func (p *Problems) Error() string {
	list := append([]Problem(nil), p.List...)
	sortProblems(list)
	lines := make([]string, len(list))
	for i, pr := range list {
		lines[i] = pr.Path + ": " + pr.Message
	}
	return strings.Join(lines, "\n")
}

func sortProblems(list []Problem) {
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].Path != list[j].Path {
			return list[i].Path < list[j].Path
		}
		return list[i].Message < list[j].Message
	})
}

// add appends a problem.
func (p *Problems) add(path, format string, args ...any) {
	p.List = append(p.List, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// errOrNil returns p (with List sorted) when it holds problems, else nil.
func (p *Problems) errOrNil() error {
	if len(p.List) == 0 {
		return nil
	}
	sortProblems(p.List)
	return p
}

// Validate checks every rule of the schema and returns a *Problems listing all the
// violations, or nil when there are none. It does not modify c. Paths are YAML key paths;
// list elements are indexed ("postal.smtp_relays[0]").
func (c *Config) Validate() error {
	var probs Problems
	c.validateInto(&probs, nil)
	return probs.errOrNil()
}

// validateInto adds c's rule violations to probs. fromEnv maps key paths to the
// environment variable that set them, so that a message can name it.
func (c *Config) validateInto(probs *Problems, fromEnv map[string]string) {
	v, err := newValidator()
	if err != nil {
		probs.add("(config)", "cannot be validated: %v", err)
		return
	}
	c.crossCheckInto(probs, fromEnv)
	err = v.Struct(c)
	if err == nil {
		return
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		probs.add("(config)", "cannot be validated: %v", err)
		return
	}
	for _, fe := range verrs {
		path := fe.Namespace()
		if _, rest, ok := strings.Cut(path, "."); ok {
			path = rest
		}
		msg := fieldMessage(fe, path)
		if env, ok := fromEnv[stripIndex(path)]; ok {
			msg += " (set by " + env + ")"
		}
		probs.add(path, "%s", msg)
	}
}

// crossCheckInto adds the problems that involve more than one key.
func (c *Config) crossCheckInto(probs *Problems, fromEnv map[string]string) {
	if c.SMTPServer.ProxyProtocol && len(c.SMTPServer.ProxyProtocolTrusted) == 0 {
		msg := "must list at least one proxy address or CIDR range when smtp_server.proxy_protocol is true"
		if env, ok := fromEnv["smtp_server.proxy_protocol_trusted"]; ok {
			msg += " (set by " + env + ")"
		}
		probs.add("smtp_server.proxy_protocol_trusted", "%s", msg)
	}
}

// stripIndex removes a trailing list index: "postal.smtp_relays[0]" -> "postal.smtp_relays".
func stripIndex(path string) string {
	if i := strings.IndexByte(path, '['); i >= 0 {
		return path[:i]
	}
	return path
}

// newValidator builds a validator that names fields by their yaml keys and knows our
// custom rules. Each call builds a new one, so the package holds no shared state.
func newValidator() (*validator.Validate, error) {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		if name := yamlName(f); name != "" {
			return name
		}
		return f.Name
	})
	for tag, check := range stringChecks() {
		err := v.RegisterValidation(tag, func(fl validator.FieldLevel) bool {
			return check(fl.Field().String()) == ""
		})
		if err != nil {
			return nil, fmt.Errorf("register rule %s: %w", tag, err)
		}
	}
	return v, nil
}

// stringChecks are the custom string rules: each returns "" when the value is acceptable,
// else the message for it. The same function decides validity and wording.
func stringChecks() map[string]func(string) string {
	return map[string]func(string) string{
		"smtp_relay": checkSMTPRelay,
		"ip_or_cidr": checkIPOrCIDR,
		"nameserver": checkNameserver,
		"host_port":  checkHostPort,
		"redis_url":  checkRedisURL,
		"key_prefix": checkKeyPrefix,
		"regexp":     checkRegexp,
		"http_url":   checkHTTPURL,
		"mailbox":    checkMailbox,
	}
}

// fieldMessage words one validator error; path is the field's YAML key path.
func fieldMessage(fe validator.FieldError, path string) string {
	if check := stringChecks()[fe.Tag()]; check != nil {
		if msg := check(fmt.Sprint(fe.Value())); msg != "" {
			return msg
		}
	}
	val := formatValue(fe.Value())
	switch fe.Tag() {
	case "eq":
		if path == "version" {
			return val + " is not supported; use the version 2 layout"
		}
		return val + " must be " + fe.Param()
	case "port":
		return val + " is not a port (1-65535)"
	case "ip":
		return val + " is not an IP address"
	case "oneof":
		return val + " is not one of " + strings.Join(strings.Fields(fe.Param()), ", ")
	case "gt":
		return val + " must be greater than " + fe.Param()
	case "gte", "min":
		return val + " must be at least " + fe.Param()
	case "required":
		return "must not be empty"
	case "required_if":
		field, value, _ := strings.Cut(fe.Param(), " ")
		return "required when " + siblingPath(path, field) + " is " + value
	case "required_without":
		return "required when " + siblingPath(path, fe.Param()) + " is empty"
	case "excluded_without":
		return "only used when " + siblingPath(path, fe.Param()) + " is set"
	}
	return fmt.Sprintf("%s fails rule %s", val, fe.Tag())
}

// siblingPath returns the YAML path of the Go field goName in the same section as path.
func siblingPath(path, goName string) string {
	section, _, _ := strings.Cut(path, ".")
	rt := reflect.TypeFor[Config]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		if yamlName(f) != section || f.Type.Kind() != reflect.Struct {
			continue
		}
		if sf, ok := f.Type.FieldByName(goName); ok {
			return section + "." + yamlName(sf)
		}
	}
	return section + "." + goName
}

// formatValue renders a value in a message: strings quoted, numbers plain.
func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case Seconds:
		return strconv.FormatFloat(float64(x), 'g', -1, 64)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// SMTPRelay is one parsed entry of postal.smtp_relays.
type SMTPRelay struct {
	// Host is the relay's host name or IP address.
	Host string
	// Port is the relay's port (25 when the URL has none, as in Postal).
	Port int
	// SSLMode is None, Auto, TLS or STARTTLS (Auto when the URL has none, as in Postal).
	SSLMode string
}

// sslModes returns the values of ?ssl_mode= that Postal accepts for SMTP relays.
func sslModes() []string { return []string{"None", "Auto", "TLS", "STARTTLS"} }

// ParseSMTPRelay parses smtp://host[:port][?ssl_mode=None|Auto|TLS|STARTTLS]. It returns
// an error naming what is wrong when s is not such a URL.
func ParseSMTPRelay(s string) (SMTPRelay, error) {
	notRelay := func(detail string) (SMTPRelay, error) {
		msg := fmt.Sprintf("%q is not an smtp:// URL", s)
		if detail != "" {
			msg += " (" + detail + ")"
		}
		return SMTPRelay{}, errors.New(msg)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "smtp" || u.Opaque != "" || u.Hostname() == "" {
		return notRelay("")
	}
	if u.User != nil {
		return notRelay("credentials are not supported")
	}
	if u.Path != "" && u.Path != "/" {
		return notRelay("a path is not allowed")
	}
	relay := SMTPRelay{Host: u.Hostname(), Port: 25, SSLMode: "Auto"}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return notRelay("port must be 1-65535")
		}
		relay.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return notRelay("port must be 1-65535")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return notRelay("bad query")
	}
	for k, vals := range q {
		if k != "ssl_mode" {
			return notRelay("unknown parameter " + k)
		}
		if len(vals) != 1 || !slices.Contains(sslModes(), vals[0]) {
			return notRelay("ssl_mode must be one of " + strings.Join(sslModes(), ", "))
		}
		relay.SSLMode = vals[0]
	}
	return relay, nil
}

func checkSMTPRelay(s string) string {
	if _, err := ParseSMTPRelay(s); err != nil {
		return err.Error()
	}
	return ""
}

func checkIPOrCIDR(s string) string {
	if net.ParseIP(s) != nil {
		return ""
	}
	if _, _, err := net.ParseCIDR(s); err == nil {
		return ""
	}
	return fmt.Sprintf("%q is not an IP address or CIDR range", s)
}

// validHost reports whether s is an IP address or a DNS host name.
func validHost(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			ok := r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
			if !ok {
				return false
			}
		}
	}
	return true
}

// validPort reports whether s is a decimal port 1-65535.
func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == s
}

func checkNameserver(s string) string {
	if validHost(s) {
		return ""
	}
	if host, port, err := net.SplitHostPort(s); err == nil && validHost(host) && validPort(port) {
		return ""
	}
	return fmt.Sprintf("%q is not a host or host:port", s)
}

// nameserverAddr returns a valid nameserver entry as host:port (port 53 by default).
func nameserverAddr(s string) string {
	if validHost(s) {
		return net.JoinHostPort(s, "53")
	}
	return s
}

func checkHostPort(s string) string {
	if host, port, err := net.SplitHostPort(s); err == nil && validHost(host) && validPort(port) {
		return ""
	}
	return fmt.Sprintf("%q is not host:port", s)
}

func checkRedisURL(s string) string {
	u, err := url.Parse(s)
	if err == nil {
		switch u.Scheme {
		case "redis", "rediss":
			if u.Host != "" {
				return ""
			}
		case "unix":
			if u.Path != "" {
				return ""
			}
		}
	}
	return fmt.Sprintf("%q is not a redis://, rediss:// or unix:// URL", s)
}

func checkKeyPrefix(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if strings.ContainsAny(s, "{} \t\r\n") {
		return fmt.Sprintf("%q must not contain spaces or braces", s)
	}
	return ""
}

func checkRegexp(s string) string {
	if _, err := regexp.Compile(s); err != nil {
		var re *syntax.Error
		if errors.As(err, &re) {
			return fmt.Sprintf("%q is not a valid regular expression: %s", s, re.Code)
		}
		return fmt.Sprintf("%q is not a valid regular expression", s)
	}
	return ""
}

func checkHTTPURL(s string) string {
	u, err := url.Parse(s)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return ""
	}
	return fmt.Sprintf("%q is not an http:// or https:// URL", s)
}

// checkMailbox accepts local@domain with both parts non-empty, no white space or angle
// brackets, and RFC 5321 lengths (local part 64, domain 255).
func checkMailbox(s string) string {
	at := strings.LastIndexByte(s, '@')
	local, domain := "", ""
	if at >= 0 {
		local, domain = s[:at], s[at+1:]
	}
	if local == "" || domain == "" || len(local) > 64 || len(domain) > 255 || strings.ContainsAny(s, " \t\r\n<>") {
		return formatValue(s) + " is not an address (local@domain)"
	}
	return ""
}
