package ovslab

import (
	"encoding/json"
	"fmt"
)

// vsctlRows runs `ovs-vsctl --format=json ARGS` (a list or find command) and
// returns one map per row, keyed by column heading, with OVSDB JSON values.
func vsctlRows(args ...string) ([]map[string]any, error) {
	out, err := run("ovs-vsctl", append([]string{"--timeout=10", "--format=json"}, args...)...)
	if err != nil {
		return nil, err
	}
	var table struct {
		Data     [][]any  `json:"data"`
		Headings []string `json:"headings"`
	}
	if err := json.Unmarshal([]byte(out), &table); err != nil {
		return nil, fmt.Errorf("ovs-vsctl %v: decoding JSON: %v", args, err)
	}
	rows := make([]map[string]any, 0, len(table.Data))
	for _, d := range table.Data {
		row := make(map[string]any, len(d))
		for i, h := range table.Headings {
			if i < len(d) {
				row[h] = d[i]
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// ovsSet returns the elements of an OVSDB set. A one-element set is encoded
// as the bare element, an empty one as ["set",[]].
func ovsSet(v any) []any {
	if a, ok := v.([]any); ok && len(a) == 2 {
		if tag, _ := a[0].(string); tag == "set" {
			elems, _ := a[1].([]any)
			return elems
		}
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// ovsAtom renders an OVSDB atom (string, number, bool or ["uuid",x]) as text.
func ovsAtom(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return fmt.Sprint(x)
	case float64:
		return fmt.Sprint(x)
	case []any:
		if len(x) == 2 {
			if tag, _ := x[0].(string); tag == "uuid" || tag == "named-uuid" {
				s, _ := x[1].(string)
				return s
			}
		}
	}
	return fmt.Sprint(v)
}

// ovsOptional returns the single element of an optional column, or "".
func ovsOptional(v any) string {
	elems := ovsSet(v)
	if len(elems) == 0 {
		return ""
	}
	return ovsAtom(elems[0])
}

// ovsMap decodes ["map",[[k,v],...]].
func ovsMap(v any) map[string]string {
	m := map[string]string{}
	a, ok := v.([]any)
	if !ok || len(a) != 2 {
		return m
	}
	if tag, _ := a[0].(string); tag != "map" {
		return m
	}
	pairs, _ := a[1].([]any)
	for _, p := range pairs {
		kv, ok := p.([]any)
		if ok && len(kv) == 2 {
			m[ovsAtom(kv[0])] = ovsAtom(kv[1])
		}
	}
	return m
}
