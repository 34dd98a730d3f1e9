package forwarder

import (
	"fmt"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
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
	prg  cel.Program
}

// compile parses and type-checks src as what. The result's type must be
// one of want (any type when none is given), or dyn (known only per
// event). A syntax or type error
// names the line and column, as "<what>:1:12: ...".
func compile(what, src string, want ...*cel.Type) (*program, error) {
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
	prg, err := env.Program(ast, cel.CostLimit(CELCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("%s `%s`: %w", what, src, err)
	}
	return &program{what: what, prg: prg}, nil
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

func firstValues(h map[string][]string) map[string]string {
	m := make(map[string]string, len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			m[k] = vs[0]
		}
	}
	return m
}

// Interface guard.
var _ interpreter.Activation = (*celVars)(nil)
