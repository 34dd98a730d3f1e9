package forwarder

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
)

// A body is parsed once, in one pass, into a tape: a flat slice with one
// node per JSON value (and per object key), in document order, each with
// the offsets of its raw text and, for an object or an array, the index
// of the node after its last member. Reaching body.data.object.livemode
// then compares a few keys and jumps over whole subtrees without reading
// their bytes again, and nothing is decoded until an expression touches
// it. The pass checks the whole document as encoding/json does (grammar,
// control characters in strings, escapes, nesting up to its 10,000
// levels), so a body is JSON for the filters exactly when it is for
// encoding/json; values it decodes are those encoding/json decodes into
// an `any` (numbers as float64, invalid UTF-8 as U+FFFD, the last of
// repeated keys).

// jkind is the kind of one JSON value.
type jkind uint8

const (
	kNull jkind = iota
	kFalse
	kTrue
	kNumber
	kString
	kObject
	kArray
)

// jnode is one value (or object key) of a jsonDoc.
type jnode struct {
	// start and end are the value's raw text, src[start:end], quotes
	// included for a string.
	start, end uint32
	// next is the index of the node after this value and all its members.
	next uint32
	// meta packs the kind (bits 0-2), the slow flag (bit 3: a string with
	// escapes or invalid UTF-8, decoded by encoding/json rather than
	// sliced) and the number of members of an object (key and value pairs)
	// or elements of an array (bits 4-31), so that a node is 16 bytes.
	meta uint32
}

const (
	kindMask = 7
	slowBit  = 8
	// countOne is one member in meta's count: at most some 268 million
	// members, far beyond any body the gateway takes; parse refuses more.
	countOne = 16
)

func (n *jnode) kind() jkind { return jkind(n.meta & kindMask) }
func (n *jnode) slow() bool  { return n.meta&slowBit != 0 }
func (n *jnode) count() uint32 {
	return n.meta / countOne
}

// mkMeta packs a scalar node's kind and slow flag.
func mkMeta(k jkind, slow bool) uint32 {
	if slow {
		return uint32(k) | slowBit
	}
	return uint32(k)
}

// jsonDoc is a parsed JSON document; nodes[0] is its root. It is read
// only after parsing, so several goroutines may share one.
type jsonDoc struct {
	src   []byte
	nodes []jnode
}

// maxNesting is encoding/json's limit on nested objects and arrays.
const maxNesting = 10000

// parseJSON parses b, a whole JSON document (with JSON's whitespace
// around it), and reports whether it is one.
func parseJSON(b []byte) (*jsonDoc, bool) {
	d := &jsonDoc{}
	if !d.parse(b, nil) {
		return nil, false
	}
	return d, true
}

// parse parses b into d, with its nodes in buf (a buffer to reuse, or
// nil), and reports whether b is one JSON document.
func (d *jsonDoc) parse(b []byte, buf []jnode) bool {
	if len(b) >= math.MaxUint32 {
		return false
	}
	if buf == nil {
		buf = make([]jnode, 0, nodesFor(len(b)))
	}
	p := parser{src: b, nodes: buf[:0], top: noNode}
	ok := p.run()
	*d = jsonDoc{src: b, nodes: p.nodes}
	return ok
}

// nodesFor guesses the nodes of a body of n bytes: webhook bodies have a
// value every 15 to 20 bytes.
func nodesFor(n int) int { return 8 + n/12 }

// Node buffers are reused: a body's nodes take about its size again,
// and most events are read by a few expressions, then dropped.
var nodeBufs = sync.Pool{New: func() any { return new([]jnode) }}

// maxPooledNodes bounds the buffers kept for reuse (64 KiB each).
const maxPooledNodes = 4096

// getNodes returns a node buffer for a body of n bytes.
func getNodes(n int) *[]jnode {
	buf := nodeBufs.Get().(*[]jnode)
	if want := nodesFor(n); cap(*buf) < want {
		*buf = make([]jnode, 0, want)
	}
	return buf
}

// putNodes gives a buffer back once nothing reads its nodes any more.
func putNodes(buf *[]jnode) {
	if cap(*buf) <= maxPooledNodes {
		*buf = (*buf)[:0]
		nodeBufs.Put(buf)
	}
}

// parser holds the state of one parse: the containers open around the
// current position.
type parser struct {
	src   []byte
	nodes []jnode
	// top is the innermost open container, noNode at the top level. An
	// open container's next holds its parent until it closes: the stack
	// of open containers costs no memory of its own.
	top   uint32
	depth int
}

// noNode marks the absence of a container.
const noNode = math.MaxUint32

// run parses the document: a value, then what follows it, until the
// root closes.
func (p *parser) run() bool {
	b := p.src
	i := skipWS(b, 0)
	for {
		var ok, opened bool
		if i, opened, ok = p.value(i); !ok {
			return false
		}
		if opened {
			continue // the first member of an object or array
		}
		var done bool
		if i, done, ok = p.after(i); !ok {
			return false
		}
		if done {
			return true
		}
	}
}

// value reads the value at b[i] and returns where the next token starts.
// An object or array is opened (opened true) and i is at its first
// member's value, or it is closed at once when empty.
func (p *parser) value(i int) (next int, opened, ok bool) {
	b := p.src
	if i >= len(b) {
		return 0, false, false
	}
	at := uint32(len(p.nodes))
	switch c := b[i]; c {
	case '{', '[':
		kind, closer := kObject, byte('}')
		if c == '[' {
			kind, closer = kArray, ']'
		}
		if p.depth >= maxNesting {
			return 0, false, false
		}
		p.nodes = append(p.nodes, jnode{start: uint32(i), meta: uint32(kind), next: p.top})
		if i = skipWS(b, i+1); i < len(b) && b[i] == closer {
			p.nodes[at].end, p.nodes[at].next = uint32(i+1), at+1
			return i + 1, false, true
		}
		p.top = at
		p.depth++
		if kind == kObject {
			i, ok = p.key(i)
			return i, true, ok
		}
		return i, true, true
	case '"':
		end, slow := scanString(b, i)
		if end < 0 {
			return 0, false, false
		}
		p.nodes = append(p.nodes, jnode{start: uint32(i), end: uint32(end), next: at + 1, meta: mkMeta(kString, slow)})
		return end, false, true
	case 't', 'f', 'n':
		lit, kind := "null", kNull
		if c == 't' {
			lit, kind = "true", kTrue
		} else if c == 'f' {
			lit, kind = "false", kFalse
		}
		if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
			return 0, false, false
		}
		p.nodes = append(p.nodes, jnode{start: uint32(i), end: uint32(i + len(lit)), next: at + 1, meta: uint32(kind)})
		return i + len(lit), false, true
	}
	end := scanNumber(b, i)
	if end < 0 {
		return 0, false, false
	}
	p.nodes = append(p.nodes, jnode{start: uint32(i), end: uint32(end), next: at + 1, meta: uint32(kNumber)})
	return end, false, true
}

// key reads an object key and its colon at b[i], and returns where the
// member's value starts.
func (p *parser) key(i int) (int, bool) {
	b := p.src
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	end, slow := scanString(b, i)
	if end < 0 {
		return 0, false
	}
	at := uint32(len(p.nodes))
	p.nodes = append(p.nodes, jnode{start: uint32(i), end: uint32(end), next: at + 1, meta: mkMeta(kString, slow)})
	if i = skipWS(b, end); i >= len(b) || b[i] != ':' {
		return 0, false
	}
	return skipWS(b, i+1), true
}

// after reads what follows a value: a comma and the next member, or the
// closing of one or more containers. done is true when the root has
// closed and only whitespace remains.
func (p *parser) after(i int) (next int, done, ok bool) {
	b := p.src
	for {
		i = skipWS(b, i)
		if p.top == noNode {
			return i, true, i == len(b)
		}
		if i >= len(b) {
			return 0, false, false
		}
		nd := &p.nodes[p.top]
		if nd.meta += countOne; nd.meta < countOne {
			return 0, false, false // more members than meta counts
		}
		switch c := b[i]; {
		case c == ',':
			i = skipWS(b, i+1)
			if nd.kind() == kObject {
				i, ok = p.key(i)
				return i, false, ok
			}
			return i, false, true
		case c == '}' && nd.kind() == kObject, c == ']' && nd.kind() == kArray:
			p.top = nd.next
			nd.end, nd.next = uint32(i+1), uint32(len(p.nodes))
			p.depth--
			i++
		default:
			return 0, false, false
		}
	}
}

// skipWS returns the index of the first byte from i that is not JSON
// whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain8 reports whether none of 8 bytes escapes or breaks a string: no
// '\\', control character or non-ASCII byte. (The closing quote is found
// first, with bytes.IndexByte.)
func plain8(x uint64) bool {
	bslash := x ^ (lsb * '\\')
	special := (bslash-lsb)&^bslash | (x-lsb*0x20)&^x | x
	return special&msb == 0
}

// scanString returns the index just past the JSON string starting at b[i]
// (a '"'), or -1 when it is not one; slow is true when it holds escapes or
// invalid UTF-8. It finds the next quote with bytes.IndexByte (vectorised),
// then checks the bytes before it 8 at a time; an escaped quote sends it
// looking for the next one.
func scanString(b []byte, i int) (end int, slow bool) {
	j := i + 1
	for {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return -1, false
		}
		q += j
		for j < q {
			for j+8 <= q && plain8(binary.LittleEndian.Uint64(b[j:])) {
				j += 8
			}
			if j >= q {
				break
			}
			switch c := b[j]; {
			case c == '\\':
				slow = true
				if j = scanEscape(b, j); j < 0 {
					return -1, false
				}
			case c < 0x20:
				return -1, false
			case c >= utf8.RuneSelf:
				r, size := utf8.DecodeRune(b[j:q])
				slow = slow || r == utf8.RuneError && size == 1
				j += size
			default:
				j++
			}
		}
		if j == q {
			return q + 1, slow
		}
		// An escape took the quote (\"): look for the next one.
	}
}

// scanEscape returns the index past the escape at b[j] (a '\\'), or -1.
func scanEscape(b []byte, j int) int {
	if j+1 >= len(b) {
		return -1
	}
	switch b[j+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return j + 2
	case 'u':
		if j+6 > len(b) {
			return -1
		}
		for _, h := range b[j+2 : j+6] {
			if !isHex(h) {
				return -1
			}
		}
		return j + 6
	}
	return -1
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanNumber returns the index just past the JSON number at b[i], or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if j := digits(b, i+1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// raw returns the raw text of the value at node at.
func (d *jsonDoc) raw(at uint32) []byte {
	n := &d.nodes[at]
	return d.src[n.start:n.end]
}

// str decodes the string at node at.
func (d *jsonDoc) str(at uint32) string {
	n := &d.nodes[at]
	if !n.slow() {
		return string(d.src[n.start+1 : n.end-1])
	}
	var s string
	_ = json.Unmarshal(d.src[n.start:n.end], &s) // checked by the parser
	return s
}

// keyIs reports whether the key at node at is name, without decoding a
// plain key.
func (d *jsonDoc) keyIs(at uint32, name string) bool {
	n := &d.nodes[at]
	if !n.slow() {
		return string(d.src[n.start+1:n.end-1]) == name
	}
	return d.str(at) == name
}

// number decodes the number at node at as encoding/json does into an
// `any`: a float64; ok is false when it is out of a float64's range.
func (d *jsonDoc) number(at uint32) (f float64, ok bool) {
	f, err := strconv.ParseFloat(string(d.raw(at)), 64)
	return f, err == nil
}

// find returns the node of the value of the member named key of the
// object at node at; the last one when the key repeats, as encoding/json
// keeps.
func (d *jsonDoc) find(at uint32, key string) (uint32, bool) {
	var found uint32
	ok := false
	k := at + 1
	for range d.nodes[at].count() {
		if d.keyIs(k, key) {
			found, ok = k+1, true
		}
		k = d.nodes[k+1].next
	}
	return found, ok
}

// members returns the key and value nodes of the object at node at, each
// key once with its last value, in the order keys first appear.
func (d *jsonDoc) members(at uint32) (keys, vals []uint32) {
	n := d.nodes[at].count()
	keys, vals = make([]uint32, 0, n), make([]uint32, 0, n)
	var seen map[string]int
	k := at + 1
	for range n {
		name := d.str(k)
		if seen == nil && len(keys) > 0 {
			seen = make(map[string]int, n)
			for i, prev := range keys {
				seen[d.str(prev)] = i
			}
		}
		if i, dup := seen[name]; dup {
			vals[i] = k + 1
		} else {
			if seen != nil {
				seen[name] = len(keys)
			}
			keys, vals = append(keys, k), append(vals, k+1)
		}
		k = d.nodes[k+1].next
	}
	return keys, vals
}

// elem returns the node of element i of the array at node at.
func (d *jsonDoc) elem(at uint32, i int64) (uint32, bool) {
	if i < 0 || i >= int64(d.nodes[at].count()) {
		return 0, false
	}
	e := at + 1
	for ; i > 0; i-- {
		e = d.nodes[e].next
	}
	return e, true
}

// native decodes the value at node at as encoding/json decodes into an
// `any`: map[string]any, []any, float64, string, bool or nil. A number
// out of range is ±Inf (encoding/json refuses the document).
func (d *jsonDoc) native(at uint32) any {
	n := &d.nodes[at]
	switch n.kind() {
	case kFalse:
		return false
	case kTrue:
		return true
	case kNumber:
		f, _ := d.number(at)
		return f
	case kString:
		return d.str(at)
	case kObject:
		m := make(map[string]any, n.count())
		k := at + 1
		for range n.count() {
			m[d.str(k)] = d.native(k + 1)
			k = d.nodes[k+1].next
		}
		return m
	case kArray:
		a := make([]any, 0, n.count())
		for e := at + 1; e < n.next; e = d.nodes[e].next {
			a = append(a, d.native(e))
		}
		return a
	}
	return nil
}
