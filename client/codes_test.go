package client

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every Code constant is listed by Codes exactly once, with a distinct value.
func TestCodesListed(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]Code{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for i, n := range v.Names {
				lit, _ := strconv.Unquote(v.Values[i].(*ast.BasicLit).Value)
				declared[n.Name] = Code(lit)
			}
		}
	}
	listed := map[Code]int{}
	for _, c := range Codes() {
		listed[c]++
	}
	values := map[Code]string{}
	for name, c := range declared {
		if listed[c] != 1 {
			t.Errorf("%s (%q) is listed %d times by Codes", name, c, listed[c])
		}
		if other, dup := values[c]; dup {
			t.Errorf("%s and %s are both %q", name, other, c)
		}
		values[c] = name
	}
	if len(Codes()) != len(declared) {
		t.Errorf("Codes lists %d codes, codes.go declares %d", len(Codes()), len(declared))
	}
}

// No product code of the engine spells a code as a bare string: every
// newError, Error and Event code and every comparison with one names a
// declared constant, so a code cannot exist that the UI has no words for.
func TestNoBareCodes(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "codes.go" {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		bare := func(e ast.Expr, what string) {
			if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING && lit.Value != `""` {
				t.Errorf("%s: %s is the bare string %s; declare it in codes.go", fset.Position(lit.Pos()), what, lit.Value)
			}
		}
		isCode := func(e ast.Expr) bool {
			s, ok := e.(*ast.SelectorExpr)
			return ok && s.Sel.Name == "Code"
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && (id.Name == "newError" || id.Name == "skip") && len(n.Args) > 0 {
					bare(n.Args[0], id.Name+"'s code")
				}
			case *ast.KeyValueExpr:
				if id, ok := n.Key.(*ast.Ident); ok && id.Name == "Code" {
					bare(n.Value, "a Code field")
				}
			case *ast.BinaryExpr:
				if n.Op == token.EQL || n.Op == token.NEQ {
					if isCode(n.X) {
						bare(n.Y, "a code compared")
					}
					if isCode(n.Y) {
						bare(n.X, "a code compared")
					}
				}
			}
			return true
		})
	}
	if checked < 20 {
		t.Fatalf("only %d files checked", checked)
	}
}
