package forwarder

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// jsonCases are documents at the edges of JSON: every kind of value,
// escapes, invalid UTF-8, repeated keys, deep nesting, numbers at the
// edges of their grammar, and near misses that are not JSON.
var jsonCases = []string{
	`{}`, `[]`, ` { } `, `[ ]`, `null`, `true`, `false`, `0`, `-0`, `1.5e3`, `-1E-2`, `1e400`, `"s"`,
	`{"a":1,"b":[1,2,{"c":null}],"d":{"e":"f"}}`,
	`{"a":1,"a":2}`, `{"a":{"x":1},"b":2,"a":[3]}`,
	`{"k\u00e9y":"v\n\"q\"\\\/\b\f\r\t\u0041\ud83d\ude00"}`,
	"{\"bad\":\"\xff\xfe\",\"ok\":\"\u00e9t\u00e9\"}", "\"\xc3\"", `"\ud800"`,
	`[[[[[[[[[[1]]]]]]]]]]`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001), strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	`{"long":"` + strings.Repeat("abcdefgh", 40) + `"}`,
	// Not JSON.
	``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `[1 2]`, `01`, `1.`, `.5`, `-`, `1e`, `1e+`, `+1`,
	`tru`, `nul`, `truex`, `"open`, "\"tab\there\"", `"\x"`, `"\u12"`, `"\u12G4"`, `{"a":1}}`, `[1]]`, `{"a":1]`, `[1}`,
	"\ufeff{}", "\v{}", `{} {}`, `NaN`, `Infinity`, `[01]`, `{"a":-}`, `[1,,2]`, `[,1]`,
}

// checkAgainstEncodingJSON parses b with the tape and with encoding/json
// and reports where they disagree: on whether b is JSON, on the decoded
// value, and on each top-level member found by key.
func checkAgainstEncodingJSON(t *testing.T, b []byte) {
	t.Helper()
	doc, ok := parseJSON(b)
	if want := json.Valid(b); ok != want {
		t.Fatalf("parseJSON(%.80q) ok = %v, encoding/json says %v", b, ok, want)
	}
	if !ok {
		return
	}
	var want any
	if err := json.Unmarshal(b, &want); err != nil {
		return // valid but not decodable: a number out of range
	}
	if got := doc.native(0); !reflect.DeepEqual(got, want) {
		t.Fatalf("%.80q: decoded %#v, encoding/json %#v", b, got, want)
	}
	if m, isMap := want.(map[string]any); isMap {
		keys, _ := doc.members(0)
		if len(keys) != len(m) {
			t.Fatalf("%.80q: %d distinct keys, encoding/json %d", b, len(keys), len(m))
		}
		for k, v := range m {
			at, found := doc.find(0, k)
			if !found || !reflect.DeepEqual(doc.native(at), v) {
				t.Fatalf("%.80q: member %q = %v (found %v), encoding/json %#v", b, k, doc.native(at), found, v)
			}
		}
	}
}

// TestParseJSONMatchesEncodingJSON: the tape takes exactly the documents
// encoding/json takes and decodes them to the same values.
func TestParseJSONMatchesEncodingJSON(t *testing.T) {
	for _, c := range jsonCases {
		checkAgainstEncodingJSON(t, []byte(c))
	}
	for _, f := range []string{"stripe_invoice_paid.json", "github_push.json", "shopify_orders_create.json"} {
		b, err := os.ReadFile("testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstEncodingJSON(t, b)
	}
	_, _, _, _, large := samples(t)
	checkAgainstEncodingJSON(t, large.Body)
}

// FuzzParseJSON compares the tape with encoding/json on any input.
//
//	go test -fuzz FuzzParseJSON -fuzztime 2m ./forwarder/
func FuzzParseJSON(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	for _, name := range []string{"stripe_invoice_paid.json", "github_push.json", "shopify_orders_create.json"} {
		if b, err := os.ReadFile("testdata/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkAgainstEncodingJSON(t, b) })
}

// BenchmarkParseJSON is the one pass over the 2 KiB Stripe event of
// BenchmarkRouting that every expression reading the body pays once.
//
//	go test -run '^$' -bench ParseJSON -benchmem ./forwarder/
func BenchmarkParseJSON(b *testing.B) {
	ev := routingSample(b)
	b.SetBytes(int64(len(ev.Body)))
	b.ReportAllocs()
	var d jsonDoc
	buf := make([]jnode, 0, nodesFor(len(ev.Body)))
	cpu := cpuTime()
	for b.Loop() {
		if !d.parse(ev.Body, buf) {
			b.Fatal("not JSON")
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}
