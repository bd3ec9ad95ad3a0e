package northbound

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Query parameters that are not attribute filters.
var listParams = map[string]bool{"fields": true, "sort_key": true, "sort_dir": true, "limit": true,
	"marker": true, "page_reverse": true, "verbose": true}

// unsortable are attributes Neutron refuses as sort keys (computed, not
// stored columns; recorded: net-list-sort-two).
var unsortable = map[string]bool{"shared": true}

// listQuery is a parsed list request.
type listQuery struct {
	filters  map[string][]string
	fields   []string
	sortKeys []string
	sortDesc []bool
	limit    int
	marker   string
	reverse  bool
}

func parseListQuery(q url.Values, known map[string]bool) (*listQuery, error) {
	lq := &listQuery{filters: map[string][]string{}}
	for k, vs := range q {
		if listParams[k] {
			continue
		}
		if !known[k] {
			return nil, badRequest("['%s'] is invalid attribute for filtering", k)
		}
		lq.filters[k] = vs
	}
	lq.fields = parseFields(q["fields"])
	lq.sortKeys = q["sort_key"]
	for _, k := range lq.sortKeys {
		if !known[k] || unsortable[k] {
			return nil, badRequest("['%s'] is invalid attribute for sort_keys", k)
		}
	}
	dirs := q["sort_dir"]
	if len(dirs) != len(lq.sortKeys) {
		return nil, badRequest("The number of sort_keys and sort_dirs must be same")
	}
	for i := range lq.sortKeys {
		desc := false
		if len(dirs) > 0 {
			switch strings.ToLower(dirs[i]) {
			case "asc":
			case "desc":
				desc = true
			default:
				return nil, badRequest("['%s'] is invalid value for sort_dirs, valid value is 'asc' and 'desc'", dirs[i])
			}
		}
		lq.sortDesc = append(lq.sortDesc, desc)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, errf(400, "BadRequest", "Bad limit request: Limit must be an integer 0 or greater and not '%s'.", v)
		}
		lq.limit = n
	}
	lq.marker = q.Get("marker")
	if v := q.Get("page_reverse"); v != "" {
		// Neutron reads it with bool_from_string: anything else is false.
		lq.reverse, _ = parseBool(v)
	}
	return lq, nil
}

// scalarString renders a view value for filtering and sorting.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

// matchValue reports whether a view value matches one filter value.
func matchValue(v any, want string) bool {
	switch x := v.(type) {
	case bool:
		b, ok := parseBool(want)
		return ok && b == x
	case []any:
		// Lists match when any element does; list-of-dicts elements
		// match "key=value" (fixed_ips=ip_address=10.0.0.3).
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				k, val, ok := strings.Cut(want, "=")
				if ok {
					if s, ok := scalarString(m[k]); ok && s == val {
						return true
					}
				}
				continue
			}
			if matchValue(e, want) {
				return true
			}
		}
		return false
	case []string:
		for _, e := range x {
			if e == want {
				return true
			}
		}
		return false
	case map[string]any:
		k, val, ok := strings.Cut(want, "=")
		if !ok {
			return false
		}
		s, ok := scalarString(x[k])
		return ok && s == val
	}
	s, ok := scalarString(v)
	if v == nil {
		return want == "" || strings.EqualFold(want, "none") || strings.EqualFold(want, "null")
	}
	return ok && s == want
}

func (lq *listQuery) match(view map[string]any) bool {
	for k, wants := range lq.filters {
		v := view[k]
		ok := false
		for _, w := range wants {
			if matchValue(v, w) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// compareValues orders two view values: nil first, numbers numerically,
// everything else by its string.
func compareValues(a, b any) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return -1
		}
		return 1
	}
	na, aok := asNumber(a)
	nb, bok := asNumber(b)
	if aok && bok {
		switch {
		case na < nb:
			return -1
		case na > nb:
			return 1
		}
		return 0
	}
	sa, _ := scalarString(a)
	sb, _ := scalarString(b)
	if _, ok := scalarString(a); !ok {
		sa = fmt.Sprint(a)
	}
	if _, ok := scalarString(b); !ok {
		sb = fmt.Sprint(b)
	}
	return strings.Compare(sa, sb)
}

func asNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// apply filters, sorts and pages views; it returns the page and the
// links of a paginated answer.
func (lq *listQuery) apply(views []map[string]any, base string, q url.Values, markerNotFound func(string) error) ([]map[string]any, []any, error) {
	var out []map[string]any
	for _, v := range views {
		if lq.match(v) {
			out = append(out, v)
		}
	}
	keys := append(append([]string{}, lq.sortKeys...), "id")
	desc := append(append([]bool{}, lq.sortDesc...), false)
	if len(lq.sortKeys) > 0 && lq.sortDesc[len(lq.sortDesc)-1] {
		desc[len(desc)-1] = true // id breaks ties in the last key's direction
	}
	less := func(a, b map[string]any) bool {
		for i, k := range keys {
			c := compareValues(a[k], b[k])
			if desc[i] {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	}
	if lq.reverse {
		sort.SliceStable(out, func(i, j int) bool { return less(out[j], out[i]) })
	} else {
		sort.SliceStable(out, func(i, j int) bool { return less(out[i], out[j]) })
	}
	start := 0
	if lq.marker != "" {
		idx := -1
		for i, v := range out {
			if v["id"] == lq.marker {
				idx = i
				break
			}
		}
		if idx < 0 {
			// Neutron looks the marker up as the resource itself.
			return nil, nil, markerNotFound(lq.marker)
		}
		start = idx + 1
	}
	page := out[start:]
	if lq.limit > 0 && len(page) > lq.limit {
		page = page[:lq.limit]
	}
	if lq.reverse {
		for i, j := 0, len(page)-1; i < j; i, j = i+1, j-1 {
			page[i], page[j] = page[j], page[i]
		}
	}
	if lq.limit == 0 {
		return page, nil, nil
	}
	// Neutron's links (recorded: net-page*): "next" unless a forward
	// page came back short, "previous" unless a reverse page did; next's
	// marker is the page's last id, previous's its first (none on an
	// empty page) with page_reverse=True.
	var links []any
	link := func(rel, marker string, reverse bool) {
		nq := url.Values{}
		for k, vs := range q {
			if k != "marker" && k != "page_reverse" {
				nq[k] = vs
			}
		}
		if marker != "" {
			nq.Set("marker", marker)
		}
		if reverse {
			nq.Set("page_reverse", "True")
		}
		links = append(links, map[string]any{"rel": rel, "href": base + "?" + nq.Encode()})
	}
	short := len(page) < lq.limit
	if !(short && !lq.reverse) {
		last := ""
		if len(page) > 0 {
			last, _ = page[len(page)-1]["id"].(string)
		}
		link("next", last, false)
	}
	if !(short && lq.reverse) {
		first := ""
		if len(page) > 0 {
			first, _ = page[0]["id"].(string)
		}
		link("previous", first, true)
	}
	return page, links, nil
}

// project keeps only the requested fields of a view.
func project(v map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return v
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		if x, ok := v[f]; ok {
			out[f] = x
		}
	}
	return out
}

// parseFields reads fields=a,b&fields=c (spaces trimmed, empties dropped),
// the same for lists and shows.
func parseFields(vs []string) []string {
	var out []string
	for _, f := range vs {
		for _, s := range strings.Split(f, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
