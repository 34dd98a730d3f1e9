package verify

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func TestJSONPath(t *testing.T) {
	body := []byte(`{"data":{"object":{"customer":"cus_1","n":42,"ok":true,"nil":null,"esc":"a\"b","items":[{"id":"a"},{"id":"b"}]}}}`)
	for path, want := range map[string]string{
		"data.object.customer":     "cus_1",
		"$.data.object.customer":   "cus_1",
		"data.object.n":            "42",
		"data.object.ok":           "true",
		"data.object.nil":          "",
		"data.object.esc":          `a"b`,
		"data.object.items.1.id":   "b",
		"$.data.object.items.0.id": "a",
		"data.object.items.9.id":   "",
		"data.object.items.x":      "",
		"data.object.items.":       "",
		"data.object":              "",
		"missing":                  "",
		"data.object.customer.x":   "",
	} {
		if got := JSONPath(body, path); got != want {
			t.Errorf("JSONPath(%s) = %q, want %q", path, got, want)
		}
	}
	for _, bad := range []string{"not json", `{"a":`, `[1,2`, ``} {
		if got := JSONPath([]byte(bad), "a"); got != "" {
			t.Errorf("JSONPath(%q, a) = %q, want \"\"", bad, got)
		}
	}
	if got := JSONPath([]byte(`[{"a":1},{"a":2}`), "1.a"); got != "" {
		t.Errorf("unterminated array: %q", got)
	}
}

// FuzzJSONPath checks JSONPath against encoding/json on any document and
// path: never a panic, and where encoding/json reads a string, number or
// boolean at the path of object keys, the same text.
func FuzzJSONPath(f *testing.F) {
	f.Add([]byte(`{"a":{"b":"c"}}`), "a.b")
	f.Add([]byte(`{"a":[1,{"b":true}]}`), "$.a.1.b")
	f.Add([]byte(`{"a":"x\u00e9"}`), "a")
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		got := JSONPath(body, path)
		var v any
		if json.Unmarshal(body, &v) != nil {
			return
		}
		for _, s := range strings.Split(strings.TrimPrefix(path, "$."), ".") {
			switch n := v.(type) {
			case map[string]any:
				v = n[s]
			default:
				return // arrays and scalars: only the no-panic property
			}
		}
		var want string
		switch x := v.(type) {
		case string:
			want = x
		case bool:
			want = strconv.FormatBool(x)
		default:
			return // numbers keep their written form, which json.Unmarshal loses
		}
		if got != want {
			t.Errorf("JSONPath(%q, %q) = %q, encoding/json reads %q", body, path, got, want)
		}
	})
}
