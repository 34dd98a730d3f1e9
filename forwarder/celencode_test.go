package forwarder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/hookgate/hookgate/event"
)

// encodingJSON is the reference appendJSON must match byte for byte:
// the value converted by toJSON, written by encoding/json without HTML
// escaping.
func encodingJSON(v ref.Val) ([]byte, error) {
	native, err := toJSON(v, 0)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(native); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// toJSON converts a CEL value to what encoding/json encodes as JSON: maps
// with string keys, lists, strings, numbers, booleans, null; bytes as
// base64, timestamps as RFC 3339, durations as Go durations ("1h2m").
func toJSON(v ref.Val, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("result nested deeper than %d levels", maxJSONDepth)
	}
	switch x := v.(type) {
	case *jsonObject:
		return json.RawMessage(x.doc.raw(x.at)), nil // a part of the body, as it came
	case *jsonArray:
		return json.RawMessage(x.doc.raw(x.at)), nil
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(x), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return uint64(x), nil
	case types.Double:
		if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v has no JSON form", f)
		}
		return float64(x), nil
	case types.String:
		return string(x), nil
	case types.Bytes:
		return []byte(x), nil
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339Nano), nil
	case types.Duration:
		return x.Duration.String(), nil
	case traits.Mapper:
		return mapToJSON(x, depth)
	case traits.Lister:
		n, _ := x.Size().(types.Int)
		out := make([]any, 0, int(n))
		for it := x.Iterator(); it.HasNext() == types.True; {
			e, err := toJSON(it.Next(), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
	return nil, fmt.Errorf("a %s has no JSON form", v.Type().TypeName())
}

func mapToJSON(m traits.Mapper, depth int) (map[string]any, error) {
	out := make(map[string]any)
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		ks, ok := k.(types.String)
		if !ok {
			return nil, fmt.Errorf("map key %v is a %s; JSON keys are strings", k, k.Type().TypeName())
		}
		e, err := toJSON(m.Get(k), depth+1)
		if err != nil {
			return nil, err
		}
		out[string(ks)] = e
	}
	return out, nil
}

// TestAppendJSONMatchesEncodingJSON: a transformation's output is what
// encoding/json writes for the same values, on strings that need escapes,
// floats at the edges of their notations, maps, lists, bytes, times and
// parts of real bodies.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	stripe, github, shopify, _, large := samples(t)
	vals := []ref.Val{
		types.String("plain"), types.String("q\"b\\s/ \b\f\n\r\t\x00\x1f\x7f <&> é \u2028\u2029 😀"), types.String("bad \xff\xfe utf8 \xc3"),
		types.Double(0), types.Double(math.Copysign(0, -1)), types.Double(1), types.Double(1.5), types.Double(1e20), types.Double(1e21), types.Double(123456789e15),
		types.Double(1e-6), types.Double(1e-7), types.Double(-2.5e-10), types.Double(math.MaxFloat64), types.Double(5e-324),
		types.Int(-42), types.Uint(42), types.True, types.NullValue, types.Bytes("\x00\xffbytes"),
		types.Timestamp{Time: time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600))}, types.Duration{Duration: 90 * time.Minute},
		types.DefaultTypeAdapter.NativeToValue(map[string]any{"b": 1, "a": []any{"x", nil, true, 2.5}, "c": map[string]any{"z": "", "é": "\n"}}),
		types.DefaultTypeAdapter.NativeToValue([]any{}), types.DefaultTypeAdapter.NativeToValue(map[string]any{}),
	}
	for _, ev := range []*event.Event{stripe, github, shopify, large} {
		vals = append(vals, bodyVal(ev.Body))
		vals = append(vals, bodyVal(bytes.ReplaceAll(ev.Body, []byte(","), []byte(" ,\n\t"))))
	}
	vals = append(vals, bodyVal([]byte(`{"a": 1, "a" : [ 2 , {} , [] ], "s": "x\u2028 \"y\" <b>"}`)))
	for _, v := range vals {
		want, werr := encodingJSON(v)
		got, gerr := appendJSON(nil, v, 0)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Errorf("%v:\n got %s (%v)\nwant %s (%v)", v, got, gerr, want, werr)
		}
	}
}

// FuzzAppendJSON compares appendJSON with encoding/json on any string,
// float and JSON body.
//
//	go test -fuzz FuzzAppendJSON -fuzztime 1m ./forwarder/
func FuzzAppendJSON(f *testing.F) {
	f.Add("a\u2028\xff\"", 1e-7, []byte(`{"a": [1, 2]}`))
	f.Add("", 1e21, []byte(`[ ]`))
	f.Fuzz(func(t *testing.T, s string, x float64, body []byte) {
		for _, v := range []ref.Val{types.String(s), types.Double(x), bodyVal(body),
			types.DefaultTypeAdapter.NativeToValue(map[string]any{s: []any{s, x}})} {
			want, werr := encodingJSON(v)
			got, gerr := appendJSON(nil, v, 0)
			if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
				t.Fatalf("%v:\n got %s (%v)\nwant %s (%v)", v, got, gerr, want, werr)
			}
		}
	})
}

// FuzzAppendJSONString: the delivery state's strings (appendJSONString)
// are json.Marshal's bytes, HTML escapes included, for any string.
//
//	go test -fuzz FuzzAppendJSONString -fuzztime 1m ./forwarder/
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "evt_1", `a"b\c`, "<script>&amp;</script>", "\x00\b\f\n\r\t\x1f\x7f", "\u2028\u2029", "\xff\xfe", "é日本", "a\u2028\xff\"<"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString([]byte("x"), s); !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("%q:\n got %s\nwant x%s", s, got, want)
		}
	})
}
