package verify

import (
	"bytes"
	"encoding/json"
	"strings"
)

// The delivery id and type sit in the body for most providers. Decoding
// the body with encoding/json costs several times the HMAC (it checks and
// decodes every byte), so a small scanner finds the few fields needed: it
// skips strings with bytes.IndexByte and nests by counting, never
// recursing. It reads bodies that Verify has already authenticated; a body
// that is not a JSON object just yields no fields.

// fields returns the raw values of keys in the JSON object b, nil for a
// key that is absent, all nil when b is not a whole JSON object. A key
// given twice takes its last value, as encoding/json does.
func fields(b []byte, keys ...string) [][]byte {
	vals := make([][]byte, len(keys))
	ok := eachField(b, func(key, value []byte) {
		for i, k := range keys {
			if keyIs(key, k) {
				vals[i] = value
			}
		}
	})
	if !ok {
		clear(vals)
	}
	return vals
}

// field returns the raw value at a dotted path of keys ("event.type"); a
// key of digits indexes an array ("events.0.id"), as a key it would find
// nothing.
func field(b []byte, path string) []byte {
	for {
		key, rest, nested := strings.Cut(path, ".")
		b = jsonStep(b, key)
		if !nested || b == nil {
			return b
		}
		path = rest
	}
}

// text reads a raw JSON string or number as text; anything else is "".
func text(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	switch c := v[0]; {
	case c == '"':
		if len(v) < 2 {
			return ""
		}
		plain := true
		for _, c := range v[1 : len(v)-1] {
			plain = plain && c >= 0x20 && c < 0x7f && c != '\\' && c != '"'
		}
		if plain {
			return string(v[1 : len(v)-1])
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return ""
		}
		return s
	case c == '-' || c >= '0' && c <= '9':
		return string(v)
	}
	return ""
}

// keyIs compares a raw (quoted) JSON key with a name.
func keyIs(raw []byte, name string) bool {
	if len(raw) == len(name)+2 && string(raw[1:len(raw)-1]) == name {
		return true
	}
	return bytes.IndexByte(raw, '\\') >= 0 && text(raw) == name
}

// eachField calls fn for each key and value of the JSON object that is
// the whole of b, and reports whether b was one.
func eachField(b []byte, fn func(key, value []byte)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	if i = skipSpace(b, i+1); i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end := skipString(b, i)
		if end < 0 {
			return false
		}
		key := b[i:end]
		if i = skipSpace(b, end); i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		vend := skipValue(b, i)
		if vend < 0 {
			return false
		}
		fn(key, b[i:vend])
		if i = skipSpace(b, vend); i >= len(b) {
			return false
		}
		switch b[i] {
		case '}':
			return skipSpace(b, i+1) == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return false
		}
	}
}

// eachElement calls fn for each element of the JSON array that is the
// whole of b, and reports whether b was one.
func eachElement(b []byte, fn func(value []byte)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return false
	}
	if i = skipSpace(b, i+1); i < len(b) && b[i] == ']' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		end := skipValue(b, i)
		if end < 0 {
			return false
		}
		fn(b[i:end])
		if i = skipSpace(b, end); i >= len(b) {
			return false
		}
		switch b[i] {
		case ']':
			return skipSpace(b, i+1) == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return false
		}
	}
}

// skipSpace returns the index of the first non-space byte from i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at b[i]
// (a '"'), or -1 when it does not end.
func skipString(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return -1
		}
		j += i
		// The quote ends the string unless an odd run of backslashes
		// precedes it; the run cannot reach back past the opening quote.
		k := j - 1
		for b[k] == '\\' {
			k--
		}
		if (j-1-k)%2 == 0 {
			return j + 1
		}
		i = j + 1
	}
}

// skipValue returns the index just past the JSON value at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	j := i
	for j < len(b) && !isDelimiter(b[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// isDelimiter ends a number or a literal.
func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ':', '"', '{', '[', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}
