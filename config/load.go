package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the configuration: the defaults, then the file at path (when path is not
// ""), then environment overrides found with lookup (nil means no environment). It then
// replaces `$config-file-root` in every string value with the absolute folder of the file
// (the working directory when path is ""), and validates.
//
// On success the *Config has FilePath set to the file's absolute path ("" when path was
// ""). When the file cannot be read, Load returns that error wrapped. When the content is
// wrong (YAML syntax, unknown keys, wrong types, bad environment values, broken rules) it
// returns a *Problems listing every problem found. A `version` other than 2 is reported
// alone, since the rest of a file in another layout cannot be judged. A YAML null value
// keeps the default.
func Load(path string, lookup func(string) (string, bool)) (*Config, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	c := Defaults()
	var probs, warns Problems
	var root string
	legacyFrom := map[string]string{}
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
		data, err := os.ReadFile(abs)
		if err != nil {
			return nil, fmt.Errorf("read config file: %w", err)
		}
		c.FilePath = abs
		root = filepath.Dir(abs)
		if stop := decodeFile(c, data, filepath.Base(abs), &probs, &warns, legacyFrom); stop {
			return nil, probs.errOrNil()
		}
	} else {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("working directory for %s: %w", ConfigFileRoot, err)
		}
		root = wd
	}
	fromEnv := applyEnv(c, lookup, &probs, &warns)
	if usedPostalDB(fromEnv) {
		c.postalDB = true
	}
	normalizeLists(c)
	expandRoot(c, root)
	c.validateInto(&probs, fromEnv)
	for path := range fromEnv {
		delete(legacyFrom, path)
	}
	renameLegacy(&probs, legacyFrom)
	if err := probs.errOrNil(); err != nil {
		return nil, err
	}
	sortProblems(warns.List)
	c.Warnings = warns.List
	return c, nil
}

// decodeFile sets c from the YAML in data, adding every problem to probs; name labels
// problems with the file as a whole. It reports true when nothing else should be checked
// (a syntax error, a document that is not a mapping, or another layout version).
// Keys Postal would ignore go to warns. A file whose version is 1, or that has
// no version and uses keys only the version 1 layout has, is read as Postal
// reads that layout.
func decodeFile(c *Config, data []byte, name string, probs, warns *Problems, legacyFrom map[string]string) (stop bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return false
		}
		probs.add(name, "%s", yamlErrorText(err))
		return true
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		probs.add(name, "holds more than one YAML document; postal.yml is a single mapping")
		return true
	case !errors.Is(err, io.EOF):
		probs.add(name, "%s", yamlErrorText(err))
		return true
	}
	top := &doc
	if top.Kind == yaml.DocumentNode {
		if len(top.Content) == 0 {
			return false
		}
		top = top.Content[0]
	}
	top = resolve(top)
	if isNull(top) {
		return false
	}
	if top.Kind != yaml.MappingNode {
		probs.add(name, "must be a mapping of sections (version, postal, web_server, ...), not %s", describe(top))
		return true
	}
	idx := leafIndex(c)
	sections := make(map[string]bool)
	for _, s := range sectionNames() {
		sections[s] = true
	}
	pairs := mappingPairs(top, "", probs, 0)
	hasVersion := false
	for _, p := range pairs {
		if p.key != "version" {
			continue
		}
		hasVersion = true
		var vp Problems
		decodeValue("version", p.val, idx["version"], &vp)
		probs.List = append(probs.List, vp.List...)
		if len(vp.List) == 0 && c.Version != 1 && c.Version != 2 {
			probs.List = probs.List[:0]
			probs.add("version", "%d is not supported; use 2 (or 1, Postal's legacy layout)", c.Version)
			return true
		}
	}
	if c.Version == 1 || !hasVersion && looksLegacy(pairs) {
		c.Version = 2
		decodeLegacy(c, pairs, idx, probs, warns, legacyFrom)
		return false
	}
	for _, p := range pairs {
		switch {
		case p.key == "version":
		case sections[p.key]:
			decodeSection(p.key, p.val, idx, probs, warns)
			if p.key == "main_db" || p.key == "message_db" {
				c.postalDB = true
			}
		default:
			reportUnknown(p.key, p.val, warns)
		}
	}
	return false
}

// yamlErrorText turns a yaml.v3 error into a message without the "yaml: " prefix.
func yamlErrorText(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// pair is one key and value of a YAML mapping.
type pair struct {
	key string
	val *yaml.Node
}

// maxMergeDepth bounds nested merge keys (<<), which may otherwise form cycles.
const maxMergeDepth = 8

// mappingPairs returns the pairs of mapping m with merge keys (<<) applied: explicit keys
// win over merged ones. Duplicate and non-scalar keys are reported under prefix.
func mappingPairs(m *yaml.Node, prefix string, probs *Problems, depth int) []pair {
	var explicit, merged []pair
	firstLine := make(map[string]int)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := resolve(m.Content[i]), resolve(m.Content[i+1])
		switch {
		case k == nil || k.Kind != yaml.ScalarNode:
			probs.add(joinPath(prefix, "?"), "line %d: a key must be a plain name", lineOf(m.Content[i]))
		case k.Tag == "!!merge":
			if depth >= maxMergeDepth {
				probs.add(joinPath(prefix, "<<"), "line %d: merges nested too deeply", k.Line)
				continue
			}
			merged = append(merged, mergePairs(v, prefix, probs, depth+1)...)
		default:
			if first, dup := firstLine[k.Value]; dup {
				probs.add(joinPath(prefix, k.Value), "defined twice (lines %d and %d)", first, k.Line)
				continue
			}
			firstLine[k.Value] = k.Line
			explicit = append(explicit, pair{key: k.Value, val: v})
		}
	}
	for _, p := range merged {
		if _, ok := firstLine[p.key]; !ok {
			firstLine[p.key] = 0
			explicit = append(explicit, p)
		}
	}
	return explicit
}

// mergePairs returns the pairs a merge key's value brings: a mapping or a list of them.
func mergePairs(v *yaml.Node, prefix string, probs *Problems, depth int) []pair {
	switch {
	case v != nil && v.Kind == yaml.MappingNode:
		return mappingPairs(v, prefix, probs, depth)
	case v != nil && v.Kind == yaml.SequenceNode:
		var out []pair
		for _, item := range v.Content {
			item = resolve(item)
			if item == nil || item.Kind != yaml.MappingNode {
				probs.add(joinPath(prefix, "<<"), "a merge list must hold mappings, not %s", describe(item))
				continue
			}
			out = append(out, mappingPairs(item, prefix, probs, depth)...)
		}
		return out
	}
	probs.add(joinPath(prefix, "<<"), "a merge value must be a mapping, not %s", describe(v))
	return nil
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func lineOf(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// resolve follows aliases to the node they name (nil for a broken or cyclic alias).
func resolve(n *yaml.Node) *yaml.Node {
	for range 64 {
		if n == nil || n.Kind != yaml.AliasNode {
			return n
		}
		n = n.Alias
	}
	return nil
}

// isNull reports whether n is absent, empty or a YAML null.
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names the kind of a node for messages.
func describe(n *yaml.Node) string {
	switch {
	case n == nil || n.Kind == yaml.AliasNode:
		return "a broken alias"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "null"
	case n.Kind == yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "a document"
}

// decodeSection sets the keys of one section from its mapping node; unknown
// keys go to warns.
func decodeSection(section string, n *yaml.Node, idx map[string]reflect.Value, probs, warns *Problems) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		probs.add(section, "must be a mapping of keys, not %s", describe(n))
		return
	}
	for _, p := range mappingPairs(n, section, probs, 0) {
		path := section + "." + p.key
		fv, ok := idx[path]
		if !ok {
			reportUnknown(path, nil, warns)
			continue
		}
		decodeValue(path, p.val, fv, probs)
	}
}

// reportUnknown reports an unknown key (ignored, as Postal ignores it), suggesting the
// closest known one. For an unknown top-level key holding a mapping, each key inside is
// reported with its full path.
func reportUnknown(path string, val *yaml.Node, probs *Problems) {
	if !strings.Contains(path, ".") && val != nil && val.Kind == yaml.MappingNode && len(val.Content) > 0 {
		var inner Problems
		pairs := mappingPairs(val, path, &inner, 0)
		probs.List = append(probs.List, inner.List...)
		for _, p := range pairs {
			reportUnknown(path+"."+p.key, nil, probs)
		}
		if len(pairs) > 0 {
			return
		}
	}
	if hint := legacyHint(path); hint != "" {
		probs.add(path, "unknown key, ignored: %s", hint)
		return
	}
	candidates := Keys()
	if !strings.Contains(path, ".") {
		candidates = append(sectionNames(), "version")
	}
	if s := suggest(path, candidates); s != "" {
		probs.add(path, "unknown key, ignored (did you mean %s?)", s)
		return
	}
	probs.add(path, "unknown key, ignored")
}

// decodeValue sets field fv from node n, or adds a problem at path. Null keeps the default.
func decodeValue(path string, n *yaml.Node, fv reflect.Value, probs *Problems) {
	if isNull(n) {
		return
	}
	if fv.Kind() == reflect.Slice {
		if n.Kind != yaml.SequenceNode {
			probs.add(path, "expected a list, not %s", describe(n))
			return
		}
		items := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			item = resolve(item)
			if item == nil || item.Kind != yaml.ScalarNode || isNull(item) {
				probs.add(fmt.Sprintf("%s[%d]", path, i), "expected a string, not %s", describe(item))
				continue
			}
			items = append(items, item.Value)
		}
		fv.Set(reflect.ValueOf(items))
		return
	}
	if n.Kind != yaml.ScalarNode {
		probs.add(path, "expected %s, not %s", kindNoun(fv.Kind()), describe(n))
		return
	}
	if msg := setFromText(fv, n.Value); msg != "" {
		probs.add(path, "%s", msg)
	}
}

// kindNoun names what a field of kind k holds, for messages.
func kindNoun(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int:
		return "a number"
	case reflect.Float64:
		return "a number of seconds"
	case reflect.Slice:
		return "a list"
	}
	return "a string"
}

// setFromText parses raw for field fv (string, bool, int, Seconds or list of strings,
// where a list is comma-separated) and sets it; it returns the problem, or "" on success.
func setFromText(fv reflect.Value, raw string) string {
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Bool:
		b, ok := parseBool(raw)
		if !ok {
			return fmt.Sprintf("%q is not a boolean (true or false)", raw)
		}
		fv.SetBool(b)
	case reflect.Int:
		n, msg := parseInt(raw)
		if msg != "" {
			return msg
		}
		fv.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Sprintf("%q is not a number of seconds", raw)
		}
		fv.SetFloat(f)
	case reflect.Slice:
		var items []string
		for _, item := range strings.Split(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		fv.Set(reflect.ValueOf(items))
	default:
		return fmt.Sprintf("cannot be set (field kind %s)", fv.Kind())
	}
	return ""
}

// parseBool accepts true/false, yes/no, on/off and 1/0 in any case.
func parseBool(raw string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "true", "yes", "on", "1":
		return true, true
	case "false", "no", "off", "0":
		return false, true
	}
	return false, false
}

// parseInt accepts a decimal integer, or a number with no fractional part; it returns
// the problem otherwise.
func parseInt(raw string) (int64, string) {
	s := strings.TrimSpace(raw)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, ""
	}
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange), math.IsNaN(f):
		return 0, fmt.Sprintf("%q is not a number", raw)
	case math.Abs(f) >= 1<<53:
		return 0, fmt.Sprintf("%q is too large", raw)
	case f != math.Trunc(f):
		return 0, fmt.Sprintf("%q is not a whole number", raw)
	}
	return int64(f), ""
}

// applyEnv applies environment overrides and returns, for each key set, the variable
// that set it. A bad value is a problem at the variable's name and leaves the key as it was.
// An empty value for a number or boolean keeps the key as it was, with a warning: Postal
// reads an empty value as unset (compose files often carry FOO= lines).
func applyEnv(c *Config, lookup func(string) (string, bool), probs, warns *Problems) map[string]string {
	from := make(map[string]string)
	for _, l := range leaves(c) {
		if l.path == "version" {
			continue
		}
		name := envName(l.path)
		raw, ok := lookup(name)
		if !ok {
			continue
		}
		if k := l.v.Kind(); k != reflect.String && k != reflect.Slice && strings.TrimSpace(raw) == "" {
			warns.add(name, "empty, ignored as Postal ignores it (%s keeps its value)", l.path)
			continue
		}
		if msg := setFromText(l.v, raw); msg != "" {
			probs.add(name, "%s", msg)
			continue
		}
		from[l.path] = name
	}
	return from
}

// normalizeLists turns empty lists into nil, so that "absent" has one representation.
func normalizeLists(c *Config) {
	for _, l := range leaves(c) {
		if l.v.Kind() == reflect.Slice && l.v.Len() == 0 {
			l.v.Set(reflect.Zero(l.v.Type()))
		}
	}
}

// expandRoot replaces ConfigFileRoot, in any letter case, with root in every string and
// list item of c.
func expandRoot(c *Config, root string) {
	for _, l := range leaves(c) {
		switch l.v.Kind() {
		case reflect.String:
			l.v.SetString(replaceASCIIFold(l.v.String(), ConfigFileRoot, root))
		case reflect.Slice:
			for i := range l.v.Len() {
				item := l.v.Index(i)
				item.SetString(replaceASCIIFold(item.String(), ConfigFileRoot, root))
			}
		}
	}
}

// replaceASCIIFold replaces every occurrence of old (ASCII) in s, ignoring ASCII case.
func replaceASCIIFold(s, old, repl string) string {
	if old == "" || len(s) < len(old) {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i+len(old) <= len(s); {
		if equalASCIIFold(s[i:i+len(old)], old) {
			b.WriteString(s[last:i])
			b.WriteString(repl)
			i += len(old)
			last = i
			continue
		}
		i++
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func equalASCIIFold(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
