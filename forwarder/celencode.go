package forwarder

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// A transformation's map or list is written as JSON straight from the CEL
// values, without building Go maps for encoding/json to reflect over.
// The output is byte for byte what encoding/json (SetEscapeHTML(false))
// writes for the same values, which the tests check: object keys sorted,
// strings escaped alike, floats in the same notation, a part of the body
// copied compacted as json.RawMessage would be.

// maxJSONDepth bounds the nesting of a transformation's result.
const maxJSONDepth = 64

// appendJSON appends the JSON form of v: maps with string keys, lists,
// strings, numbers, booleans, null; bytes as base64, timestamps as RFC
// 3339, durations as Go durations ("1h2m").
func appendJSON(dst []byte, v ref.Val, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("result nested deeper than %d levels", maxJSONDepth)
	}
	if len(dst) > MaxTransformOutput {
		return nil, fmt.Errorf("output over the %d-byte limit", MaxTransformOutput)
	}
	switch x := v.(type) {
	case *jsonObject:
		return x.doc.appendCompact(dst, x.at), nil // a part of the body, as it came
	case *jsonArray:
		return x.doc.appendCompact(dst, x.at), nil
	case types.Null:
		return append(dst, "null"...), nil
	case types.Bool:
		return strconv.AppendBool(dst, bool(x)), nil
	case types.Int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case types.Uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case types.Double:
		return appendFloat(dst, float64(x))
	case types.String:
		return appendString(dst, string(x)), nil
	case types.Bytes:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, x)
		return append(dst, '"'), nil
	case types.Timestamp:
		return appendString(dst, x.Time.UTC().Format(time.RFC3339Nano)), nil
	case types.Duration:
		return appendString(dst, x.Duration.String()), nil
	case traits.Mapper:
		return appendMap(dst, x, depth)
	case traits.Lister:
		dst = append(dst, '[')
		first := true
		for it := x.Iterator(); it.HasNext() == types.True; {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			var err error
			if dst, err = appendJSON(dst, it.Next(), depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	}
	return nil, fmt.Errorf("a %s has no JSON form", v.Type().TypeName())
}

// appendMap writes a map with its keys sorted, as encoding/json does.
func appendMap(dst []byte, m traits.Mapper, depth int) ([]byte, error) {
	var keys []string
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		ks, ok := k.(types.String)
		if !ok {
			return nil, fmt.Errorf("a map key is a %s; JSON keys are strings", k.Type().TypeName())
		}
		keys = append(keys, string(ks))
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		var err error
		if dst, err = appendJSON(dst, m.Get(types.String(k)), depth+1); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// appendFloat writes f as encoding/json does: %f between 1e-6 and 1e21,
// %e outside, with a one-digit exponent where it fits ("1e-7").
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%v has no JSON form", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string, escaped as encoding/json does
// without HTML escaping: quotes, backslashes and control characters,
// U+2028 and U+2029, and invalid UTF-8 as U+FFFD.
func appendString(dst []byte, s string) []byte {
	return appendQuoted(dst, s, false)
}

// appendJSONString writes s as a JSON string byte for byte as json.Marshal
// does: appendString's escapes and HTML's (<, > and & as \u003c, \u003e,
// \u0026).
func appendJSONString(dst []byte, s string) []byte {
	return appendQuoted(dst, s, true)
}

// appendQuoted is appendString; with html it also escapes <, > and & as
// encoding/json does by default (json.Marshal, Encoder.SetEscapeHTML).
func appendQuoted(dst []byte, s string, html bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || (c != '<' && c != '>' && c != '&')) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendCompact copies the value at node at without the whitespace
// between its tokens, as encoding/json copies a json.RawMessage.
func (d *jsonDoc) appendCompact(dst []byte, at uint32) []byte {
	n := &d.nodes[at]
	switch n.kind() {
	case kObject:
		dst = append(dst, '{')
		k := at + 1
		for i := range n.count() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, d.raw(k)...)
			dst = append(dst, ':')
			dst = d.appendCompact(dst, k+1)
			k = d.nodes[k+1].next
		}
		return append(dst, '}')
	case kArray:
		dst = append(dst, '[')
		for e := at + 1; e < n.next; e = d.nodes[e].next {
			if e > at+1 {
				dst = append(dst, ',')
			}
			dst = d.appendCompact(dst, e)
		}
		return append(dst, ']')
	}
	return append(dst, d.raw(at)...)
}
