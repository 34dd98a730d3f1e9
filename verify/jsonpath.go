package verify

import "strings"

// JSONPath returns the value at a dotted path in the JSON document b, as
// text: a string's contents, a number or a boolean as written. It returns
// "" when the path leads nowhere, to an object, an array or null, or when
// b is not JSON. Steps are object keys ("data.object.customer"); a step of
// digits also indexes an array ("items.0.id"). A leading "$." is accepted
// with the same meaning ("$.data.object.customer"), so the gateway has one
// path syntax in two spellings. It reads with the same scanner as the
// schemes' id and type fields: no decoding of the parts it skips.
func JSONPath(b []byte, path string) string {
	path = strings.TrimPrefix(path, "$.")
	for b != nil {
		step, rest, more := strings.Cut(path, ".")
		b = jsonStep(b, step)
		if !more {
			break
		}
		path = rest
	}
	switch v := string(b); v {
	case "true", "false":
		return v
	}
	return text(b)
}

// jsonStep returns the raw value under one path step of b: an object's
// key, or an array's element when step is an index; nil when absent.
func jsonStep(b []byte, step string) []byte {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return fields(b, step)[0]
	}
	n := 0
	for _, c := range []byte(step) {
		if c < '0' || c > '9' || n > 1<<24 {
			return nil
		}
		n = n*10 + int(c-'0')
	}
	if step == "" {
		return nil
	}
	var found []byte
	if !eachElement(b, func(v []byte) {
		if n == 0 {
			found = v
		}
		n--
	}) {
		return nil
	}
	return found
}
