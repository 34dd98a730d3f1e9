package forwarder

import (
	"errors"
	"fmt"
	"reflect"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// The body variable is a CEL value over the body's tape (jsondoc.go):
// an object is a CEL map and an array a CEL list whose members are made
// only when an expression reaches them. Operations that need a whole
// value (==, a conversion, list concatenation) decode it then.

// bodyVal is the body variable: the body's JSON value, or null when the
// body is not one JSON document.
func bodyVal(b []byte) ref.Val {
	doc, ok := parseJSON(b)
	return doc.body(ok)
}

// body is the body variable of a document parse reported ok for.
func (d *jsonDoc) body(ok bool) ref.Val {
	if !ok {
		return types.NullValue
	}
	if v := d.val(0); !types.IsError(v) {
		return v
	}
	return types.NullValue // a lone number out of range
}

// val returns the CEL value of the node at: objects and arrays stay on
// the tape, scalars are decoded (numbers as doubles).
func (d *jsonDoc) val(at uint32) ref.Val {
	switch d.nodes[at].kind() {
	case kNull:
		return types.NullValue
	case kFalse:
		return types.False
	case kTrue:
		return types.True
	case kNumber:
		f, ok := d.number(at)
		if !ok {
			return types.NewErr("JSON number out of range")
		}
		return types.Double(f)
	case kString:
		return types.String(d.str(at))
	case kObject:
		return &jsonObject{doc: d, at: at}
	}
	return &jsonArray{doc: d, at: at}
}

// whole decodes the node at into CEL's own values.
func (d *jsonDoc) whole(at uint32) ref.Val {
	return types.DefaultTypeAdapter.NativeToValue(d.native(at))
}

// jsonObject is a JSON object on a tape; it is a CEL map.
type jsonObject struct {
	doc *jsonDoc
	at  uint32
}

// Find implements traits.Mapper.
func (o *jsonObject) Find(key ref.Val) (ref.Val, bool) {
	k, isString := key.(types.String)
	if !isString {
		return nil, false
	}
	v, ok := o.doc.find(o.at, string(k))
	if !ok {
		return nil, false
	}
	return o.doc.val(v), true
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

// Size implements traits.Sizer: the number of distinct keys.
func (o *jsonObject) Size() ref.Val {
	keys, _ := o.doc.members(o.at)
	return types.Int(len(keys))
}

// Iterator implements traits.Iterable: the distinct keys, in the order
// they first appear.
func (o *jsonObject) Iterator() traits.Iterator {
	keys, _ := o.doc.members(o.at)
	vals := make([]ref.Val, len(keys))
	for i, k := range keys {
		vals[i] = types.String(o.doc.str(k))
	}
	return types.NewRefValList(types.DefaultTypeAdapter, vals).Iterator()
}

// ConvertToNative implements ref.Val.
func (o *jsonObject) ConvertToNative(t reflect.Type) (any, error) {
	return o.doc.whole(o.at).ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (o *jsonObject) ConvertToType(t ref.Type) ref.Val { return o.doc.whole(o.at).ConvertToType(t) }

// Equal implements ref.Val.
func (o *jsonObject) Equal(other ref.Val) ref.Val { return o.doc.whole(o.at).Equal(other) }

// Type implements ref.Val.
func (o *jsonObject) Type() ref.Type { return types.MapType }

// Value implements ref.Val: the object decoded, as encoding/json would.
func (o *jsonObject) Value() any { return o.doc.native(o.at) }

// jsonArray is a JSON array on a tape; it is a CEL list.
type jsonArray struct {
	doc *jsonDoc
	at  uint32
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
			return types.NewErr("list index is not an integer")
		}
		i = int64(x)
	default:
		return types.MaybeNoSuchOverloadErr(index)
	}
	e, ok := a.doc.elem(a.at, i)
	if !ok {
		return types.NewErr("list index out of range")
	}
	return a.doc.val(e)
}

// Contains implements traits.Container: whether an element equals v.
func (a *jsonArray) Contains(v ref.Val) ref.Val { return a.list().Contains(v) }

// Size implements traits.Sizer.
func (a *jsonArray) Size() ref.Val { return types.Int(a.doc.nodes[a.at].count()) }

// Iterator implements traits.Iterable: the elements, in order, each made
// when reached.
func (a *jsonArray) Iterator() traits.Iterator {
	return &jsonIterator{doc: a.doc, next: a.at + 1, end: a.doc.nodes[a.at].next}
}

// list returns the array as a CEL list of its elements.
func (a *jsonArray) list() traits.Lister {
	vals := make([]ref.Val, 0, a.doc.nodes[a.at].count())
	for e, end := a.at+1, a.doc.nodes[a.at].next; e < end; e = a.doc.nodes[e].next {
		vals = append(vals, a.doc.val(e))
	}
	return types.NewRefValList(types.DefaultTypeAdapter, vals)
}

// Add implements traits.Adder: list concatenation.
func (a *jsonArray) Add(other ref.Val) ref.Val { return a.list().Add(other) }

// ConvertToNative implements ref.Val.
func (a *jsonArray) ConvertToNative(t reflect.Type) (any, error) {
	return a.doc.whole(a.at).ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (a *jsonArray) ConvertToType(t ref.Type) ref.Val { return a.doc.whole(a.at).ConvertToType(t) }

// Equal implements ref.Val.
func (a *jsonArray) Equal(other ref.Val) ref.Val { return a.list().Equal(other) }

// Type implements ref.Val.
func (a *jsonArray) Type() ref.Type { return types.ListType }

// Value implements ref.Val: the array decoded, as encoding/json would.
func (a *jsonArray) Value() any { return a.doc.native(a.at) }

// jsonIterator walks an array's elements on the tape.
type jsonIterator struct {
	doc       *jsonDoc
	next, end uint32
}

// HasNext implements traits.Iterator.
func (it *jsonIterator) HasNext() ref.Val { return types.Bool(it.next < it.end) }

// Next implements traits.Iterator.
func (it *jsonIterator) Next() ref.Val {
	if it.next >= it.end {
		return nil
	}
	v := it.doc.val(it.next)
	it.next = it.doc.nodes[it.next].next
	return v
}

var errIterator = errors.New("an iterator has no native or JSON form")

// ConvertToNative implements ref.Val: an iterator has no native form.
func (it *jsonIterator) ConvertToNative(reflect.Type) (any, error) { return nil, errIterator }

// ConvertToType implements ref.Val.
func (it *jsonIterator) ConvertToType(ref.Type) ref.Val { return types.NewErr("%v", errIterator) }

// Equal implements ref.Val.
func (it *jsonIterator) Equal(other ref.Val) ref.Val { return types.Bool(it == other) }

// Type implements ref.Val.
func (it *jsonIterator) Type() ref.Type { return types.IteratorType }

// Value implements ref.Val.
func (it *jsonIterator) Value() any { return fmt.Sprintf("iterator@%d", it.next) }

// Interface guards.
var (
	_ traits.Mapper   = (*jsonObject)(nil)
	_ traits.Lister   = (*jsonArray)(nil)
	_ traits.Iterator = (*jsonIterator)(nil)
)
