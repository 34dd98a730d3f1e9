package forwarder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// keyFunc extracts an event's ordering key; "" means the event is not
// ordered.
type keyFunc func(jetstream.Msg) string

// maxKeyLen bounds an ordering key, so a hostile body cannot make the
// forwarder keep megabytes of keys.
const maxKeyLen = 256

// newKeyFunc reads an ordered_by spec: "$.a.b.0.c" is a JSON path into the
// body (object fields and array indexes), anything else a header name.
func newKeyFunc(spec string) (keyFunc, error) {
	if spec == "" {
		return nil, errors.New("empty")
	}
	path, ok := strings.CutPrefix(spec, "$.")
	if !ok {
		if strings.ContainsAny(spec, " \t:\r\n") {
			return nil, errors.New("want a header name or a JSON path starting with \"$.\"")
		}
		name := textproto.CanonicalMIMEHeaderKey(spec)
		return func(m jetstream.Msg) string { return clip(m.Headers().Get(name)) }, nil
	}
	steps := strings.Split(path, ".")
	for _, s := range steps {
		if s == "" {
			return nil, fmt.Errorf("JSON path %q has an empty step", spec)
		}
	}
	return func(m jetstream.Msg) string { return clip(jsonKey(m.Data(), steps)) }, nil
}

// jsonKey walks steps into a JSON document and renders the value found:
// strings as they are, numbers and booleans as JSON; "" when the path
// leads nowhere or to an object, array or null.
func jsonKey(body []byte, steps []string) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return ""
	}
	for _, s := range steps {
		switch node := v.(type) {
		case map[string]any:
			v = node[s]
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(node) {
				return ""
			}
			v = node[i]
		default:
			return ""
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func clip(s string) string {
	if len(s) > maxKeyLen {
		return s[:maxKeyLen]
	}
	return s
}
