package hookgate

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEReferencesExist: every file the README links to or names as a
// document (*.md) is in the repository, so that a reader who follows one
// finds it (a design document kept outside the repository was named once).
func TestREADMEReferencesExist(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	refs := map[string]bool{}
	for _, m := range regexp.MustCompile(`\]\(([^)#\s]+)[^)]*\)`).FindAllStringSubmatch(readme, -1) {
		if !strings.Contains(m[1], "://") {
			refs[m[1]] = true
		}
	}
	for _, m := range regexp.MustCompile(`(?:^|[\s(`+"`"+`])([A-Za-z0-9_./-]+\.md)\b`).FindAllStringSubmatch(readme, -1) {
		refs[m[1]] = true
	}
	if len(refs) < 3 {
		t.Fatalf("only %d references found: did the README's links change shape?", len(refs))
	}
	for ref := range refs {
		if _, err := os.Stat(ref); err != nil {
			t.Errorf("README.md refers to %s, which is not in the repository", ref)
		}
	}
}

// TestREADMENATSCommandsRunWithoutPrompts: the nats CLI asks questions for
// every consumer setting a `nats consumer add` line leaves out, so a line
// copied from the README must carry --defaults (or a --config file).
func TestREADMENATSCommandsRunWithoutPrompts(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), "") // join continued lines
	adds := regexp.MustCompile("nats (?:--[a-z]+ \\S+ )*consumer add[^`\n]*").FindAllString(text, -1)
	if len(adds) == 0 {
		t.Skip("the README gives no nats consumer add command")
	}
	for _, a := range adds {
		if !strings.Contains(a, "--defaults") && !strings.Contains(a, "--config") {
			t.Errorf("%q prompts for its settings: add --defaults", a)
		}
	}
}
