package config

import (
	"reflect"
	"sort"
	"strings"
)

// leaf is one settable key of a Config: its YAML path and its addressable value.
type leaf struct {
	path string        // "version" or "section.key"
	v    reflect.Value // addressable field inside the Config
}

// yamlName returns the yaml tag name of a struct field, or "" when it has none or "-".
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// leaves lists every key of c in schema order, with addressable values.
func leaves(c *Config) []leaf {
	root := reflect.ValueOf(c).Elem()
	rt := root.Type()
	var out []leaf
	for i := range rt.NumField() {
		name := yamlName(rt.Field(i))
		if name == "" {
			continue
		}
		fv := root.Field(i)
		if fv.Kind() != reflect.Struct {
			out = append(out, leaf{path: name, v: fv})
			continue
		}
		st := fv.Type()
		for j := range st.NumField() {
			key := yamlName(st.Field(j))
			if key == "" {
				continue
			}
			out = append(out, leaf{path: name + "." + key, v: fv.Field(j)})
		}
	}
	return out
}

// leafIndex maps each key path of c to its addressable value.
func leafIndex(c *Config) map[string]reflect.Value {
	idx := make(map[string]reflect.Value)
	for _, l := range leaves(c) {
		idx[l.path] = l.v
	}
	return idx
}

// sectionNames lists the top-level keys that hold a section, in schema order.
func sectionNames() []string {
	rt := reflect.TypeFor[Config]()
	var out []string
	for i := range rt.NumField() {
		f := rt.Field(i)
		if name := yamlName(f); name != "" && f.Type.Kind() == reflect.Struct {
			out = append(out, name)
		}
	}
	return out
}

// Keys returns every key path postal.yml may contain ("version" and "section.key"), in
// schema order. The result is a new slice on each call.
func Keys() []string {
	var c Config
	ls := leaves(&c)
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.path
	}
	return out
}

// envName is the environment variable that overrides key path p, as Postal names it:
// postal.web_hostname -> POSTAL_WEB_HOSTNAME, smtp_server.default_port ->
// SMTP_SERVER_DEFAULT_PORT.
func envName(p string) string {
	return strings.ToUpper(strings.ReplaceAll(p, ".", "_"))
}

// suggest returns the candidate closest to s by edit distance, or "" when none is close
// enough to be a plausible typo. Ties go to the alphabetically first candidate.
func suggest(s string, candidates []string) string {
	limit := 1
	switch n := len([]rune(s)); {
	case n > 12:
		limit = 3
	case n > 6:
		limit = 2
	}
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	best, bestDist := "", limit+1
	for _, c := range sorted {
		if d := editDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b: insertions,
// deletions, substitutions and transpositions of adjacent characters each cost 1.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
