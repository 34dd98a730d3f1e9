package verify

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// jsonText is a JSON string or number read as text; any other JSON value
// leaves it empty without failing the decode, so one odd field does not
// hide the others.
type jsonText string

// UnmarshalJSON implements json.Unmarshaler.
func (t *jsonText) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		s, err := strconv.Unquote(string(b))
		if err != nil {
			// JSON escapes Go does not know (\/): let encoding/json do it.
			if json.Unmarshal(b, &s) != nil {
				return nil
			}
		}
		*t = jsonText(s)
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		*t = jsonText(b)
	}
	return nil
}

// decodeJSON fills v from body when body is a JSON document and leaves v
// as it is otherwise. The body is already verified: a body that is not
// JSON is stored as received, its id and type just stay empty.
func decodeJSON(body []byte, v any) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || (body[0] != '{' && body[0] != '[') {
		return
	}
	// Unmarshal checks the whole document before it sets anything, and a
	// field of an unexpected type only skips that field.
	_ = json.Unmarshal(body, v)
}

// idType is the commonest body shape: top-level "id" and "type".
type idType struct {
	ID   jsonText `json:"id"`
	Type jsonText `json:"type"`
}

// jsonPath reads a dotted path ("event.type") from a JSON body, for the
// generic scheme's id_field and type_field options.
func jsonPath(body []byte, path string) string {
	var cur json.RawMessage = bytes.TrimSpace(body)
	for _, key := range strings.Split(path, ".") {
		if len(cur) == 0 || cur[0] != '{' {
			return ""
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(cur, &obj) != nil {
			return ""
		}
		cur = obj[key]
	}
	var t jsonText
	_ = t.UnmarshalJSON(cur)
	return string(t)
}
