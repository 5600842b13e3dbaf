package jsdeps

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/parley-im/parley"

// pkg is one line of `go list`: a package and its direct imports.
type pkg struct {
	path    string
	imports []string
}

// list runs go list for GOOS=js GOARCH=wasm in the module root and returns
// the packages it prints (with -deps: the patterns and all they import).
func list(t *testing.T, deps bool, patterns ...string) []pkg {
	t.Helper()
	args := []string{"list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}"}
	if deps {
		args = append(args, "-deps")
	}
	cmd := exec.Command("go", append(args, patterns...)...)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(patterns, " "), err, stderr.Bytes())
	}
	var pkgs []pkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			pkgs = append(pkgs, pkg{path: f[0], imports: f[1:]})
		}
	}
	return pkgs
}

func under(path, dir string) bool {
	p := module + "/" + dir
	return path == p || strings.HasPrefix(path, p+"/")
}

// The browser client's dependency graph holds no HTTP server machinery, no
// embedded store and no server package.
func TestWasmDeps(t *testing.T) {
	pkgs := list(t, true, "./wasm")
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.path] = true
		switch {
		case p.path == "net/http", strings.HasPrefix(p.path, "net/http/"):
			t.Errorf("GOOS=js ./wasm depends on %s", p.path)
		case strings.HasPrefix(p.path, "go.etcd.io/bbolt"):
			t.Errorf("GOOS=js ./wasm depends on the relay's store %s", p.path)
		case under(p.path, "server"):
			t.Errorf("GOOS=js ./wasm depends on %s", p.path)
		}
	}
	// The rule is only worth something if the graph is the client's: it
	// must reach the engine and the protocol package.
	for _, want := range []string{module + "/client", module + "/relay", "syscall/js"} {
		if !seen[want] {
			t.Errorf("GOOS=js ./wasm does not depend on %s: is this the client's graph?", want)
		}
	}
}

// crypto/ and client/ are pure Go: no package of theirs imports syscall/js
// or a JS binding, and neither reaches into the server.
func TestPureCoreImports(t *testing.T) {
	pkgs := list(t, true, "./crypto/...", "./client/...")
	checked := 0
	for _, p := range pkgs {
		if !strings.HasPrefix(p.path, module+"/") {
			continue
		}
		if under(p.path, "wasm") {
			t.Errorf("%s is in the graph of crypto/ and client/", p.path)
		}
		checked++
		for _, imp := range p.imports {
			switch {
			case imp == "syscall/js", strings.HasPrefix(imp, "github.com/hack-pad/"):
				t.Errorf("%s imports %s; only wasm/ may touch JavaScript", p.path, imp)
			case under(imp, "server"):
				t.Errorf("%s imports %s; the protocol both sides share is package relay", p.path, imp)
			case under(p.path, "crypto") && under(imp, "client"):
				t.Errorf("%s imports %s; crypto/ sits below the engine", p.path, imp)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d of Parley's packages in the graph of crypto/ and client/", checked)
	}
}
