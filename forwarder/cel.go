package forwarder

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/hookgate/hookgate/event"
)

// Filters and transformations are CEL expressions (https://cel.dev), the
// language Caddy's own `expression` matcher uses: small, typed, with no
// I/O, no loops beyond bounded comprehensions, and cost tracking, so an
// expression can be checked at provisioning and bounded per evaluation.
// Each expression sees the same variables:
//
//	body         dyn                  the body parsed as JSON; null when it is not JSON
//	headers      map(string, string)  the stored provider headers, canonical names, first value
//	source       string               the source the provider posted to ("stripe")
//	version      string               the version path segment ("v1")
//	type         string               the event type ("invoice.paid"), "" when none
//	event_id     string               the event id ("stripe:evt_1")
//	received_at  timestamp            when the gateway received the event
//
// JSON numbers are doubles (CEL compares them with ints, so
// body.amount > 1000 works; arithmetic wants doubles: body.amount / 100.0).
// The standard library is extended with cel-go's strings, lists, math,
// encoders, bindings (cel.bind), two-variable comprehensions and optional
// values (body.?data.?id.orValue("")).

// CELCostLimit bounds the cost of one evaluation of one expression, in
// CEL's cost units (about one per value visited, so some tens of
// thousands of array elements). An evaluation over it fails.
const CELCostLimit = 1_000_000

// MaxTransformOutput bounds the body a transformation may produce.
const MaxTransformOutput = 1 << 20

// celEnv is the environment every expression is compiled in; made once.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("body", cel.DynType),
		cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("source", cel.StringType),
		cel.Variable("version", cel.StringType),
		cel.Variable("type", cel.StringType),
		cel.Variable("event_id", cel.StringType),
		cel.Variable("received_at", cel.TimestampType),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Lists(),
		ext.Math(),
		ext.Encoders(),
		ext.Bindings(),
		ext.TwoVarComprehensions(),
	)
})

// program is one compiled expression.
type program struct {
	// what names the expression in errors ("filter 2", "transform").
	what string
	// keys are the field names the expression selects and the string
	// literals it holds: a detail of an evaluation error ("no such key:
	// customer") is shown only when it is one of them (evalError).
	keys map[string]bool
	prg  cel.Program
}

// evalError is the error of a failed evaluation of p: the expression's
// name and the kind of failure, never a value of the event. CEL's own
// messages, and Go's under them, can quote one ("no such key: " a key
// read from the body, "invalid RFC 3339 timestamp" and the body's string,
// "unknown time zone " the body's zone, a regexp built from the body),
// and these errors reach the log, the delivery state and the dead letter,
// where no secret may go. So only known text is shown: a message of
// fixedEvalErrors whole; the kind of one of evalErrorKinds, with its
// detail when it is a key of the expression's own text (a field it
// selects or a string literal: "no such key: customer", so the operator
// knows to use has()); anything else as "evaluation failed".
func (p *program) evalError(err error) error {
	msg := err.Error()
	if fixedEvalError(msg) {
		return fmt.Errorf("%s: %s", p.what, msg)
	}
	for _, kind := range evalErrorKinds {
		rest, ok := strings.CutPrefix(msg, kind)
		switch {
		case !ok:
			continue
		case rest == "":
			return fmt.Errorf("%s: %s", p.what, kind)
		case p.keys[strings.TrimLeft(rest, ": ")]:
			return fmt.Errorf("%s: %s: %s", p.what, kind, strings.TrimLeft(rest, ": "))
		}
		return fmt.Errorf("%s: %s %s", p.what, kind, notShown)
	}
	return fmt.Errorf("%s: evaluation failed %s", p.what, notShown)
}

// notShown stands for the part of an evaluation error left out.
const notShown = "(on a value of the event, not shown)"

// fixedEvalErrors are CEL's evaluation error messages made of fixed
// text, shown whole (cel-go v0.32.0: common/types/err.go, overflow.go,
// the standard library and the ext libraries the environment loads).
var fixedEvalErrors = map[string]bool{
	"division by zero":                                 true,
	"modulus by zero":                                  true,
	"integer overflow":                                 true,
	"unsigned integer overflow":                        true,
	"duration overflow":                                true,
	"timestamp overflow":                               true,
	"NaN values cannot be ordered":                     true,
	"list elements must have the same type":            true,
	"list elements must be comparable":                 true,
	"optional.none() dereference":                      true,
	"invalid UTF-8 in bytes, cannot convert to string": true,
	"math.@max(list) argument must not be empty":       true,
	"math.@min(list) argument must not be empty":       true,
	"operation cancelled: actual cost limit exceeded":  true,
	"list index out of range":                          true, // celjson.go
	"list index is not an integer":                     true, // celjson.go
	"JSON number out of range":                         true, // celjson.go
	"an iterator has no native or JSON form":           true, // celjson.go
	"no such overload":                                 true,
	"type conversion error":                            true,
	"type conversion not supported for 'type'":         true,
	"type conversion on iterators not supported":       true,
}

// typeNameErrors are the starts of CEL's error messages whose rest holds
// type and function names only, shown whole.
var typeNameErrors = []string{
	"type conversion error from '", // ... 'string' to 'int'
	"no such overload: ",           // ... int(map)
}

// evalErrorKinds are the fixed starts of CEL's (and Go's) error messages
// that go on with a value: shown without it.
var evalErrorKinds = []string{
	"no such key",
	"no such field",
	"no such attribute",
	"invalid RFC 3339 timestamp",
	"error parsing regexp",
	"index out of bounds",
	"index out of range",
	"unknown time zone",
	"time: invalid duration",
	"unsupported index value",
	"unsupported index type",
	"invalid qualifier type",
	"illegal base64 data",
	"error during formatting",
}

// fixedEvalError reports whether a CEL error message is one of
// fixedEvalErrors or starts with one of typeNameErrors.
func fixedEvalError(msg string) bool {
	if fixedEvalErrors[msg] {
		return true
	}
	for _, p := range typeNameErrors {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// shown returns s when it is one of the expression's keys (a field name
// or string literal of the config, not a value of the event), else a
// placeholder.
func (p *program) shown(s string) string {
	if p.keys[s] {
		return s
	}
	return valueNotShown
}

// valueNotShown stands in an error for a value of the event
// (program.shown), e.g. a header name a transformation read from it.
const valueNotShown = "(a value of the event, not shown)"

// exprKeys returns the field names a checked expression selects and the
// string literals it holds: the names of its own text an evaluation
// error may show. Variable names are not among them: a key read from
// the body that happens to spell one ("body") is still a value of the
// event.
func exprKeys(a *cel.Ast) map[string]bool {
	keys := map[string]bool{}
	celast.PostOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.SelectKind:
			keys[e.AsSelect().FieldName()] = true
		case celast.LiteralKind:
			if s, ok := e.AsLiteral().(types.String); ok {
				keys[string(s)] = true
			}
		}
	}))
	return keys
}

// compile parses and type-checks src as what. The result's type must be
// one of want (any type when none is given), or dyn (known only per
// event). A syntax or type error
// names the line and column, as "<what>:1:12: ...".
func compile(what, src string, want ...*cel.Type) (*program, error) {
	return compileLimit(what, src, CELCostLimit, want...)
}

// compileLimit is compile with a cost limit of its own.
func compileLimit(what, src string, costLimit uint64, want ...*cel.Type) (*program, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("%s: CEL environment: %w", what, err)
	}
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("%s: empty expression", what)
	}
	ast, iss := env.CompileSource(common.NewStringSource(src, what))
	if iss.Err() != nil {
		return nil, fmt.Errorf("%s `%s`: %w", what, src, iss.Err())
	}
	if out := ast.OutputType(); len(want) > 0 && !out.IsExactType(cel.DynType) && !isOneOf(out, want) {
		return nil, fmt.Errorf("%s `%s`: yields %s, want %s", what, src, out, typeNames(want))
	}
	prg, err := env.Program(ast, cel.CostLimit(costLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("%s `%s`: %w", what, src, err)
	}
	return &program{what: what, keys: exprKeys(ast), prg: prg}, nil
}

func isOneOf(t *cel.Type, want []*cel.Type) bool {
	for _, w := range want {
		if t.IsAssignableType(w) || w.IsAssignableType(t) {
			return true
		}
	}
	return false
}

func typeNames(ts []*cel.Type) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.String()
	}
	return strings.Join(names, " or ")
}

// celVars are one event's variables, an interpreter.Activation. body and
// headers are made on first use, once for every expression that reads
// them: the filters and the transformation of one delivery parse the
// body once. A celVars serves one goroutine; release gives its parse
// back when no value made from it is read any more.
type celVars struct {
	ev            *event.Event
	body, headers ref.Val
	doc           jsonDoc
	nodes         *[]jnode
}

// release recycles the body's parse. The values of the variables must
// not be used after: results that outlive it (an encoded body, header
// values) are copies.
func (v *celVars) release() {
	if v.nodes != nil {
		*v.nodes = v.doc.nodes
		putNodes(v.nodes)
		v.nodes, v.doc, v.body = nil, jsonDoc{}, nil
	}
}

// bodyVal parses the body into v's own document on first use.
func (v *celVars) bodyVal() ref.Val {
	if v.body == nil {
		v.nodes = getNodes(len(v.ev.Body))
		v.body = v.doc.body(v.doc.parse(v.ev.Body, *v.nodes))
	}
	return v.body
}

// vars returns the variables of one event for evaluation.
func vars(ev *event.Event) *celVars { return &celVars{ev: ev} }

// ResolveName implements interpreter.Activation.
func (v *celVars) ResolveName(name string) (any, bool) {
	switch name {
	case "body":
		return v.bodyVal(), true
	case "headers":
		if v.headers == nil {
			v.headers = types.NewStringStringMap(types.DefaultTypeAdapter, firstValues(v.ev.Header))
		}
		return v.headers, true
	case "source":
		return types.String(v.ev.Source), true
	case "version":
		return types.String(v.ev.Version), true
	case "type":
		return types.String(v.ev.Type), true
	case "event_id":
		return types.String(v.ev.ID), true
	case "received_at":
		return types.Timestamp{Time: v.ev.ReceivedAt}, true
	}
	return nil, false
}

// Parent implements interpreter.Activation: there is none.
func (v *celVars) Parent() interpreter.Activation { return nil }

// firstValues maps each header to its first value, leaving out Hookgate's
// and NATS's own (which a stored event's Header never holds; a message
// being built at ingest does).
func firstValues(h map[string][]string) map[string]string {
	m := make(map[string]string, len(h))
	for k, vs := range h {
		if len(vs) > 0 && !event.IsReserved(k) {
			m[k] = vs[0]
		}
	}
	return m
}

// IngestCostLimit bounds one evaluation of a source's expression
// (subject_suffix), on the request path: some thousands of values visited.
const IngestCostLimit = 10_000

// EventExpr is a compiled CEL expression over an event outside a
// destination: a source's subject_suffix, evaluated at ingest. It sees the
// variables filters see and yields a string, a list of strings, or null.
type EventExpr struct{ p *program }

// CompileEventExpr compiles src as a source's expression, named what in
// errors ("subject_suffix:1:12: ..."), with the IngestCostLimit. It
// refuses an expression that cannot yield a string, a list or null.
func CompileEventExpr(what, src string) (*EventExpr, error) {
	p, err := compileLimit(what, src, IngestCostLimit, cel.StringType, cel.ListType(cel.StringType), cel.NullType)
	if err != nil {
		return nil, err
	}
	return &EventExpr{p: p}, nil
}

// ErrTooManyStrings is StringsAtMost's error for a list longer than its
// bound.
var ErrTooManyStrings = errors.New("yields too many strings")

// StringsAtMost evaluates e over ev: a string is one value, a list of
// strings its elements, null none. An evaluation error (a missing field,
// the cost limit) or another result is an error that names the
// expression. A list of more than max strings
// is an error wrapping ErrTooManyStrings, found after reading max+1 of
// them, so a list of thousands in a provider's body costs no more than a
// short one. max < 0 is no bound.
func (e *EventExpr) StringsAtMost(ev *event.Event, max int) ([]string, error) {
	act := vars(ev)
	defer act.release()
	out, _, err := e.p.prg.Eval(act)
	if err != nil {
		return nil, e.p.evalError(err)
	}
	switch x := out.(type) {
	case types.String:
		return []string{string(x)}, nil
	case types.Null:
		return nil, nil
	case traits.Lister:
		var strs []string
		for it := x.Iterator(); it.HasNext() == types.True; {
			if max >= 0 && len(strs) == max {
				return nil, fmt.Errorf("%s: %w: more than %d", e.p.what, ErrTooManyStrings, max)
			}
			s, ok := it.Next().(types.String)
			if !ok {
				return nil, fmt.Errorf("%s: yields a list holding a non-string", e.p.what)
			}
			strs = append(strs, string(s))
		}
		return strs, nil
	}
	return nil, fmt.Errorf("%s: yields %s; want a string, a list of strings or null", e.p.what, out.Type().TypeName())
}

// Interface guard.
var _ interpreter.Activation = (*celVars)(nil)
