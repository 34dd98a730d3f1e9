package forwarder

import (
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/verify"
)

// keyFunc extracts an event's ordering key from its stored headers and
// body; "" means the event is not ordered.
type keyFunc func(h nats.Header, body []byte) string

// maxKeyLen bounds an ordering key, so a hostile body cannot make the
// forwarder keep megabytes of keys.
const maxKeyLen = 256

// newKeyFunc reads an ordered_by spec. A JSON path into the body is
// written as the sources' type_field is ("data.object.customer", array
// indexes as digits: "items.0.id") or with a leading "$."
// ("$.data.object.customer"), with the same meaning; both are read by
// verify.JSONPath. A spec without a dot is a header name; a key at the top
// of the body is "$.customer".
func newKeyFunc(spec string) (keyFunc, error) {
	if spec == "" {
		return nil, errors.New("empty")
	}
	if strings.ContainsAny(spec, " \t:\r\n") {
		return nil, errors.New("want a header name or a JSON path such as data.object.customer or $.customer")
	}
	if !strings.Contains(spec, ".") {
		name := textproto.CanonicalMIMEHeaderKey(spec)
		return func(h nats.Header, _ []byte) string { return clip(h.Get(name)) }, nil
	}
	for _, s := range strings.Split(strings.TrimPrefix(spec, "$."), ".") {
		if s == "" {
			return nil, fmt.Errorf("JSON path %q has an empty step", spec)
		}
	}
	return func(_ nats.Header, body []byte) string { return clip(verify.JSONPath(body, spec)) }, nil
}

func clip(s string) string {
	if len(s) > maxKeyLen {
		return s[:maxKeyLen]
	}
	return s
}
