package client

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"strconv"
	"strings"
	"testing"
)

// clearBuckets are the engine's buckets whose keys name nobody, with why.
var clearBuckets = map[string]string{
	bSelf:        "this device's own records, fixed names",
	bMsgIndex:    "random message ids, which the relay never sees in the clear",
	bOutbox:      "counters",
	bGroupOutbox: "counters",
	bAttach:      "random message ids",
	bUploads:     "random message ids",
	bUploadData:  "random message ids and part numbers",
	bLink:        "fixed names of this device's link in progress",
	// Issue 20 item 6 step 3: its u64 sent_at key part is a time; it
	// needs an order without time before it can be named.
	bSentTo: "send times and message ids (time: not yet hidden)",
}

// TestEveryBucketIsNamedOrClear: a bucket added to the engine is either in
// KeyNameRules or said here to name nobody, so a new bucket keyed by a
// handle cannot slip past the naming layer unnoticed.
func TestEveryBucketIsNamedOrClear(t *testing.T) {
	rules := KeyNameRules()
	for b := range clearBuckets {
		if _, ok := rules[b]; ok {
			t.Errorf("bucket %q is both named and clear", b)
		}
	}
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range pkgs["client"].Files {
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || len(vs.Values) != len(vs.Names) {
				return true
			}
			for i, id := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING || len(id.Name) < 2 || id.Name[0] != 'b' || id.Name[1] < 'A' || id.Name[1] > 'Z' {
					continue
				}
				bucket, _ := strconv.Unquote(lit.Value)
				seen++
				_, named := rules[bucket]
				if _, clear := clearBuckets[bucket]; !named && !clear {
					t.Errorf("bucket %s = %q is neither in KeyNameRules nor in clearBuckets", id.Name, bucket)
				}
			}
			return true
		})
	}
	if seen < len(rules)+len(clearBuckets) {
		t.Fatalf("found %d bucket constants, fewer than the %d classified", seen, len(rules)+len(clearBuckets))
	}
}
