package forwarder

import (
	"fmt"
	"strconv"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// filters are a destination's filter expressions, ANDed: an event goes to
// the destination only when every one yields true.
type filters []*program

// compileFilters compiles each expression of Config.Filters.
func compileFilters(srcs []string) (filters, error) {
	fs := make(filters, 0, len(srcs))
	for i, src := range srcs {
		what := "filter"
		if len(srcs) > 1 {
			what += " " + strconv.Itoa(i+1)
		}
		p, err := compile(what, src, cel.BoolType)
		if err != nil {
			return nil, err
		}
		fs = append(fs, p)
	}
	return fs, nil
}

// match reports whether the event passes every filter. An expression that
// cannot be evaluated for this event (a missing field, a null, a value of
// another type, the cost limit) does not match, and err says why.
func (fs filters) match(act interpreter.Activation) (ok bool, err error) {
	for _, p := range fs {
		out, _, err := p.prg.Eval(act)
		if err != nil {
			return false, p.evalError(err)
		}
		b, isBool := out.(types.Bool)
		if !isBool {
			return false, fmt.Errorf("%s: yields %s, not a bool", p.what, out.Type().TypeName())
		}
		if !b {
			return false, nil
		}
	}
	return true, nil
}
