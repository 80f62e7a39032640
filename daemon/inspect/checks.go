package inspect

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/postalgo/postal/daemon/untrusted"
)

// newCheck cleans a check taken from a scanner's reply.
func newCheck(code string, score float64, desc string) Check {
	return Check{Code: untrusted.Text(strings.TrimSpace(code), MaxCodeLen), Score: score,
		Description: untrusted.Text(strings.TrimSpace(desc), MaxDescriptionLen)}
}

// top keeps the MaxChecks checks with the highest absolute scores, in that
// order (ties by code), so a reply's order does not matter.
func top(cs []Check) []Check {
	slices.SortStableFunc(cs, func(a, b Check) int {
		if c := cmp.Compare(math.Abs(b.Score), math.Abs(a.Score)); c != 0 {
			return c
		}
		return strings.Compare(a.Code, b.Code)
	})
	if len(cs) > MaxChecks {
		cs = cs[:MaxChecks:MaxChecks]
	}
	return cs
}
