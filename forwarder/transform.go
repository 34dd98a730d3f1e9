package forwarder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/textproto"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"

	"github.com/hookgate/hookgate/event"
)

// routing is what a destination's filter, transform and
// transform_headers lines compile to; nil when it has none.
type routing struct {
	filters filters
	// body yields the body to send; nil keeps the stored body.
	body *program
	// headers yields headers to set (a string) or remove (null); nil
	// changes none.
	headers *program
}

// compileRouting compiles a config's expressions; nil when there are none.
func compileRouting(c *Config) (*routing, error) {
	if len(c.Filters) == 0 && c.Transform == "" && c.TransformHeaders == "" {
		return nil, nil
	}
	rt := &routing{}
	var err error
	if rt.filters, err = compileFilters(c.Filters); err != nil {
		return nil, err
	}
	if c.Transform != "" {
		rt.body, err = compile("transform", c.Transform, cel.MapType(cel.DynType, cel.DynType), cel.ListType(cel.DynType), cel.StringType, cel.BytesType)
		if err != nil {
			return nil, err
		}
	}
	if c.TransformHeaders != "" {
		rt.headers, err = compile("transform_headers", c.TransformHeaders, cel.MapType(cel.DynType, cel.DynType))
		if err != nil {
			return nil, err
		}
	}
	return rt, nil
}

// outgoing is what a transformation makes of an event: the request to
// send instead of the stored one. The stored event is never changed.
type outgoing struct {
	body []byte
	// contentType is the Content-Type to send ("" to send none).
	contentType string
	// edits are transform_headers' changes, applied after the configured
	// headers.
	edits []headerEdit
}

// headerEdit sets a header (remove false) or removes it.
type headerEdit struct {
	name, value string
	remove      bool
}

// apply runs the transformation on one event, starting from its stored
// body and Content-Type. Any failure (an evaluation error, the cost limit,
// a result of the wrong shape, an output over MaxTransformOutput, a header
// the forwarder owns) fails the whole transformation: no half-built body.
func (rt *routing) apply(act interpreter.Activation, out *outgoing) error {
	if rt.body != nil {
		v, _, err := rt.body.prg.Eval(act)
		if err != nil {
			return rt.body.evalError(err)
		}
		body, jsonOut, err := encodeBody(v)
		if err != nil {
			return fmt.Errorf("transform: %w", err)
		}
		out.body = body
		if jsonOut {
			out.contentType = "application/json"
		}
	}
	if rt.headers != nil {
		v, _, err := rt.headers.prg.Eval(act)
		if err != nil {
			return rt.headers.evalError(err)
		}
		if out.edits, err = headerEdits(v, rt.headers.shown); err != nil {
			return fmt.Errorf("transform_headers: %w", err)
		}
		for _, e := range out.edits {
			if e.name == "Content-Type" {
				out.contentType = e.value
			}
		}
	}
	return nil
}

// encodeBody turns a transformation's result into the body to send: a
// string or bytes as it is, a map or a list as JSON (jsonOut true).
func encodeBody(v ref.Val) (body []byte, jsonOut bool, err error) {
	switch x := v.(type) {
	case types.String:
		body = []byte(x)
	case types.Bytes:
		body = []byte(x)
	case traits.Mapper, traits.Lister:
		if body, err = appendJSON(make([]byte, 0, 512), v, 0); err != nil {
			return nil, false, err
		}
		jsonOut = true
	default:
		return nil, false, fmt.Errorf("yields %s; want a map or a list (sent as JSON), a string or bytes", v.Type().TypeName())
	}
	if len(body) > MaxTransformOutput {
		return nil, false, fmt.Errorf("output of %d bytes is over the %d-byte limit", len(body), MaxTransformOutput)
	}
	return body, jsonOut, nil
}

// headerEdits reads transform_headers' map: a string value sets the
// header, null removes it. Names the forwarder owns are refused. A name
// appears in an error through shown: one read from the event does not.
func headerEdits(v ref.Val, shown func(string) string) ([]headerEdit, error) {
	m, ok := v.(traits.Mapper)
	if !ok {
		return nil, fmt.Errorf("yields %s; want a map of header names to strings (set) or null (remove)", v.Type().TypeName())
	}
	var edits []headerEdit
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		name, ok := k.(types.String)
		if !ok {
			return nil, fmt.Errorf("a header name is a %s, not a string", k.Type().TypeName())
		}
		canon := textproto.CanonicalMIMEHeaderKey(string(name))
		label := canon // in errors
		if shown(string(name)) != string(name) {
			label = valueNotShown
		}
		if canon != "Content-Type" {
			if err := checkHeaderName(string(name)); err != nil {
				if label != canon {
					return nil, fmt.Errorf("header %s: refused: not a header name, or one the forwarder or the HTTP client sets", label)
				}
				return nil, err
			}
		}
		switch val := m.Get(k).(type) {
		case types.String:
			if i := strings.IndexFunc(string(val), isControl); i >= 0 {
				return nil, fmt.Errorf("header %s: value holds the control character %q at byte %d; a header value cannot carry CR, LF or other control characters (trim them, e.g. .replace(\"\\n\", \" \"))", label, string(val)[i], i)
			}
			edits = append(edits, headerEdit{name: canon, value: string(val)})
		case types.Null:
			if canon == "Content-Type" {
				return nil, errors.New("header Content-Type: cannot be removed; set it instead")
			}
			edits = append(edits, headerEdit{name: canon, remove: true})
		default:
			return nil, fmt.Errorf("header %s: value is a %s; want a string or null", label, val.Type().TypeName())
		}
	}
	// Map order is not defined; a stable order makes requests repeatable.
	slices.SortFunc(edits, func(a, b headerEdit) int { return strings.Compare(a.name, b.name) })
	return edits, nil
}

// isControl reports whether r may not appear in a header value (RFC 9110
// section 5.5: CTLs other than HTAB, and DEL).
func isControl(r rune) bool {
	return r < ' ' && r != '\t' || r == 0x7f
}

// Sent identifies the body a delivery of a destination with a transform
// or transform_headers sent: its size in bytes
// and its SHA-256 (hex). It is recorded with each attempt's delivery state
// and attempt history, so the event log can tell whether the body the
// current transformation yields is the one that was sent, without storing
// bodies.
type Sent struct {
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

// sentOf digests a body to send.
func sentOf(body []byte) *Sent {
	sum := sha256.Sum256(body)
	return &Sent{Size: len(body), SHA256: hex.EncodeToString(sum[:])}
}

// Transforms reports whether the destination's running config has a
// transform or transform_headers.
func (f *Forwarder) Transforms() bool {
	return f.routing != nil && (f.routing.body != nil || f.routing.headers != nil)
}

// Preview is what the destination's transformation, in the running
// config, makes of an event now: the body and Content-Type it would send,
// the headers it would set or remove (a "" value removes; a credential's
// value is Redacted), and the body's digest to compare with what was sent.
type Preview struct {
	Body        []byte
	ContentType string
	Headers     map[string]string
	Sent        Sent
}

// Preview applies the running config's transformation to ev without
// sending anything. The error is the one a delivery would dead-letter
// the event with.
func (f *Forwarder) Preview(ev *event.Event) (*Preview, error) {
	out := outgoing{body: ev.Body, contentType: ev.ContentType}
	if f.routing != nil {
		act := vars(ev)
		defer act.release()
		if err := f.routing.apply(act, &out); err != nil {
			return nil, err
		}
	}
	p := &Preview{Body: out.body, ContentType: out.contentType, Sent: *sentOf(out.body)}
	for _, e := range out.edits {
		if p.Headers == nil {
			p.Headers = make(map[string]string, len(out.edits))
		}
		p.Headers[e.name] = e.value
		if !e.remove && (IsCredentialHeader(e.name) || copiesCredential(ev.Header, e.value)) {
			p.Headers[e.name] = Redacted
		}
	}
	return p, nil
}

// copiesCredential reports whether v is the value of one of the event's
// credential headers (a signature the event log redacts), which a
// transform_headers may copy under another name.
func copiesCredential(h map[string][]string, v string) bool {
	for k, vs := range h {
		if IsCredentialHeader(k) && slices.Contains(vs, v) {
			return true
		}
	}
	return false
}
