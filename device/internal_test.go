package device

import (
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// TestPromptPlaceholdersDeclared keeps templates and argument lists in
// step: every {{name}} is a declared argument and every argument is used.
func TestPromptPlaceholdersDeclared(t *testing.T) {
	for _, p := range promptDefs {
		declared := map[string]bool{}
		for _, a := range p.prompt.Arguments {
			declared[a.Name] = false
		}
		for _, m := range placeholder.FindAllStringSubmatch(p.template, -1) {
			if _, ok := declared[m[1]]; !ok {
				t.Errorf("prompt %s uses undeclared {{%s}}", p.prompt.Name, m[1])
			}
			declared[m[1]] = true
		}
		for name, used := range declared {
			if !used {
				t.Errorf("prompt %s declares %s but never uses it", p.prompt.Name, name)
			}
		}
	}
}

// TestLayering enforces docs/ARCHITECTURE.md §2: production code of package device
// does not import package simulate.
func TestLayering(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if strings.Contains(imp.Path.Value, "/simulate") {
				t.Errorf("%s imports %s", e.Name(), imp.Path.Value)
			}
		}
	}
}
