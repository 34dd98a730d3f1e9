package forwarder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/hookgate/hookgate/verify"
)

// The body variable is not decoded up front. Decoding a 2 KiB body into
// Go maps costs some ten times what a typical filter needs: a few fields.
// Instead body is a CEL value over the raw bytes: an object or array is
// read on access with verify's JSON scanner (the one behind type_field and
// ordered_by), and only the values an expression reaches are decoded.
// Operations that need a whole value (==, a conversion) decode it then.

// jsonVal returns the CEL value of one raw JSON value: objects and arrays
// stay raw, scalars are decoded (numbers as doubles). A value that is not
// JSON is an error value.
func jsonVal(raw []byte) ref.Val {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return types.NewErr("empty JSON value")
	}
	switch c := raw[0]; {
	case c == '{':
		return &jsonObject{raw: raw}
	case c == '[':
		return &jsonArray{raw: raw}
	case c == '"':
		return jsonString(raw)
	case c == 't' && string(raw) == "true":
		return types.True
	case c == 'f' && string(raw) == "false":
		return types.False
	case c == 'n' && string(raw) == "null":
		return types.NullValue
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return types.NewErr("invalid JSON value %.40q", raw)
	}
	return types.Double(f)
}

// jsonString decodes a raw JSON string; plain ones without a copy through
// encoding/json.
func jsonString(raw []byte) ref.Val {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return types.String(raw[1 : len(raw)-1])
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return types.NewErr("invalid JSON string: %v", err)
	}
	return types.String(s)
}

// bodyVal is the body variable: its raw JSON value, or null when the body
// is not JSON. An object's or array's top level is walked here, once, and
// kept for the expressions; deeper values are checked when reached.
func bodyVal(b []byte) ref.Val {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		v := jsonVal(b)
		ok := false
		switch x := v.(type) {
		case *jsonObject:
			_, ok = walk(x.raw, &x.indexed, &x.members)
		case *jsonArray:
			_, ok = walk(x.raw, &x.indexed, &x.elems)
		}
		if !ok {
			return types.NullValue
		}
		return v
	}
	if v := jsonVal(b); !types.IsError(v) && json.Valid(b) {
		return v
	}
	return types.NullValue
}

// jsonWhole decodes a raw value fully into CEL's own values, for the
// operations that need all of it.
func jsonWhole(raw []byte) ref.Val {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return types.NewErr("invalid JSON: %v", err)
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

// keyMatches compares a raw (quoted) JSON key with a name.
func keyMatches(raw []byte, name string) bool {
	if len(raw) == len(name)+2 && string(raw[1:len(raw)-1]) == name {
		return true
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	s, ok := jsonString(raw).(types.String)
	return ok && string(s) == name
}

// jsonObject is a JSON object read lazily; it is a CEL map. Its members
// are found with one walk on first access, and each member's value is
// made once: body.data.object.a and body.data.object.b walk each level
// once. A jsonObject belongs to one evaluation's variables, one goroutine.
type jsonObject struct {
	raw     []byte
	indexed bool
	members []jsonMember
}

// jsonMember is one member of an object, or one element of an array (key
// nil); val is made from raw on first use.
type jsonMember struct {
	key, raw []byte
	val      ref.Val
}

func (m *jsonMember) value() ref.Val {
	if m.val == nil {
		m.val = jsonVal(m.raw)
	}
	return m.val
}

// walk indexes the members of an object or array once, and reports
// whether it was well formed; a malformed one reads as empty.
func walk(raw []byte, indexed *bool, members *[]jsonMember) ([]jsonMember, bool) {
	if !*indexed {
		*indexed = true
		*members = make([]jsonMember, 0, 16) // most webhook objects are smaller
		if !verify.JSONEach(raw, func(k, v []byte) { *members = append(*members, jsonMember{key: k, raw: v}) }) {
			*members = nil
		}
	}
	return *members, *members != nil
}

// find returns the member named key, the last one when it repeats (as
// encoding/json keeps).
func (o *jsonObject) find(key string) *jsonMember {
	ms, _ := walk(o.raw, &o.indexed, &o.members)
	for i := len(ms) - 1; i >= 0; i-- {
		if keyMatches(ms[i].key, key) {
			return &ms[i]
		}
	}
	return nil
}

// Find implements traits.Mapper.
func (o *jsonObject) Find(key ref.Val) (ref.Val, bool) {
	k, isString := key.(types.String)
	if !isString {
		return nil, false
	}
	m := o.find(string(k))
	if m == nil {
		return nil, false
	}
	return m.value(), true
}

// Get implements traits.Indexer.
func (o *jsonObject) Get(key ref.Val) ref.Val {
	if v, ok := o.Find(key); ok {
		return v
	}
	return types.NewErr("no such key: %v", key)
}

// Contains implements traits.Container: whether the object has the key.
func (o *jsonObject) Contains(key ref.Val) ref.Val {
	_, ok := o.Find(key)
	return types.Bool(ok)
}

// Size implements traits.Sizer.
func (o *jsonObject) Size() ref.Val { return o.size() }

func (o *jsonObject) size() ref.Val {
	ms, _ := walk(o.raw, &o.indexed, &o.members)
	return types.Int(len(ms))
}

// Iterator implements traits.Iterable: the keys, in document order.
func (o *jsonObject) Iterator() traits.Iterator {
	ms, _ := walk(o.raw, &o.indexed, &o.members)
	keys := make([]ref.Val, len(ms))
	for i, m := range ms {
		keys[i] = jsonString(m.key)
	}
	return types.NewRefValList(types.DefaultTypeAdapter, keys).Iterator()
}

// ConvertToNative implements ref.Val.
func (o *jsonObject) ConvertToNative(t reflect.Type) (any, error) {
	return convertWhole(o.raw, t)
}

// ConvertToType implements ref.Val.
func (o *jsonObject) ConvertToType(t ref.Type) ref.Val { return convertTypeWhole(o.raw, t) }

// Equal implements ref.Val.
func (o *jsonObject) Equal(other ref.Val) ref.Val { return jsonWhole(o.raw).Equal(other) }

// Type implements ref.Val.
func (o *jsonObject) Type() ref.Type { return types.MapType }

// Value implements ref.Val: the object decoded, as encoding/json would.
func (o *jsonObject) Value() any { return nativeWhole(o.raw) }

// jsonArray is a JSON array read lazily; it is a CEL list. Like
// jsonObject, it is walked once and each element is made once.
type jsonArray struct {
	raw     []byte
	indexed bool
	elems   []jsonMember
	asList  traits.Lister
}

// Get implements traits.Indexer: an element by index.
func (a *jsonArray) Get(index ref.Val) ref.Val {
	var i int64
	switch x := index.(type) {
	case types.Int:
		i = int64(x)
	case types.Uint:
		i = int64(x)
	case types.Double:
		if float64(x) != float64(int64(x)) {
			return types.NewErr("unsupported index value %v in list", x)
		}
		i = int64(x)
	default:
		return types.MaybeNoSuchOverloadErr(index)
	}
	es, _ := walk(a.raw, &a.indexed, &a.elems)
	if i < 0 || i >= int64(len(es)) {
		return types.NewErr("index out of range: %d (size %d)", i, len(es))
	}
	return es[i].value()
}

// Contains implements traits.Container: whether an element equals v.
func (a *jsonArray) Contains(v ref.Val) ref.Val { return a.list().Contains(v) }

// Size implements traits.Sizer.
func (a *jsonArray) Size() ref.Val { return a.size() }

func (a *jsonArray) size() ref.Val {
	es, _ := walk(a.raw, &a.indexed, &a.elems)
	return types.Int(len(es))
}

// Iterator implements traits.Iterable: the elements, in order.
func (a *jsonArray) Iterator() traits.Iterator { return a.list().Iterator() }

// list returns the array as a CEL list of its (lazily read) elements.
func (a *jsonArray) list() traits.Lister {
	if a.asList == nil {
		es, _ := walk(a.raw, &a.indexed, &a.elems)
		vals := make([]ref.Val, len(es))
		for i := range es {
			vals[i] = es[i].value()
		}
		a.asList = types.NewRefValList(types.DefaultTypeAdapter, vals)
	}
	return a.asList
}

// Add implements traits.Adder: list concatenation.
func (a *jsonArray) Add(other ref.Val) ref.Val { return a.list().Add(other) }

// ConvertToNative implements ref.Val.
func (a *jsonArray) ConvertToNative(t reflect.Type) (any, error) {
	return convertWhole(a.raw, t)
}

// ConvertToType implements ref.Val.
func (a *jsonArray) ConvertToType(t ref.Type) ref.Val { return convertTypeWhole(a.raw, t) }

// Equal implements ref.Val.
func (a *jsonArray) Equal(other ref.Val) ref.Val { return a.list().Equal(other) }

// Type implements ref.Val.
func (a *jsonArray) Type() ref.Type { return types.ListType }

// Value implements ref.Val: the array decoded, as encoding/json would.
func (a *jsonArray) Value() any { return nativeWhole(a.raw) }

func nativeWhole(raw []byte) any {
	var v any
	_ = json.Unmarshal(raw, &v) // checked by the scanner that made the value
	return v
}

func convertWhole(raw []byte, t reflect.Type) (any, error) {
	v := jsonWhole(raw)
	if types.IsError(v) {
		return nil, errors.New(fmt.Sprint(v))
	}
	return v.ConvertToNative(t)
}

func convertTypeWhole(raw []byte, t ref.Type) ref.Val {
	return jsonWhole(raw).ConvertToType(t)
}

// Interface guards.
var (
	_ traits.Mapper = (*jsonObject)(nil)
	_ traits.Lister = (*jsonArray)(nil)
)
