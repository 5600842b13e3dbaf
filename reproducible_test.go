package parley

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

// reproCold, when set in the environment, gives the second build an empty
// Go build cache, so it compiles every package again instead of reusing
// the first build's compiled packages: the full proof, several minutes
// longer. Without it both builds still link, join segments and compress
// on their own, from different directories.
const reproCold = "PARLEY_REPRO_COLD"

// clientHashLine is the last line `make wasm` prints.
var clientHashLine = regexp.MustCompile(`(?m)^client SHA-256 ([0-9a-f]{64}) `)

// TestReproducibleClientBuild runs `make wasm` in two clean clones of this
// commit at different paths and checks that they make the same bytes:
// the wasm (and its compressed copies and loader) that a server ships, so
// the hash `make wasm` prints for a release is the hash anyone who builds
// the same commit gets, and the hash Settings shows (state().clientHash)
// can be compared with it (docs/THREAT_MODEL.md, "The operator serves the
// client"). It tests what is committed: a clone does not see uncommitted
// changes. About a minute; skipped with -short and outside a git checkout.
func TestReproducibleClientBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the client twice (about a minute); -short skips it")
	}
	for _, tool := range []string{"git", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	if err := exec.Command("git", "rev-parse", "--git-dir").Run(); err != nil {
		t.Skip("not a git checkout: nothing to clone")
	}
	tmp := t.TempDir()
	dirs := []string{
		filepath.Join(tmp, "a", "parley"),
		filepath.Join(tmp, "b", "somewhere", "else", "parley-build"),
	}
	for _, d := range dirs {
		if out, err := exec.Command("git", "clone", "--quiet", "--shared", ".", d).CombinedOutput(); err != nil {
			t.Fatalf("git clone into %s: %v\n%s", d, err, out)
		}
	}

	outs := make([]string, len(dirs))
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		cmd := exec.Command("make", "wasm")
		cmd.Dir = d
		cmd.Env = os.Environ()
		if i == 1 && os.Getenv(reproCold) != "" {
			cmd.Env = append(cmd.Env, "GOCACHE="+filepath.Join(tmp, "gocache"))
		}
		wg.Go(func() {
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil {
			t.Fatalf("make wasm in %s: %v\n%s", dirs[i], errs[i], outs[i])
		}
	}

	dist := func(d string) string { return filepath.Join(d, "web", "dist") }
	names, err := os.ReadDir(dist(dirs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("make wasm wrote nothing to web/dist")
	}
	for _, e := range names {
		a, err := os.ReadFile(filepath.Join(dist(dirs[0]), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dist(dirs[1]), e.Name()))
		if err != nil {
			t.Fatalf("only the first build wrote %s: %v", e.Name(), err)
		}
		if !bytes.Equal(a, b) {
			sa, sb := sha256.Sum256(a), sha256.Sum256(b)
			t.Errorf("web/dist/%s differs between two builds of one commit: %x (%d bytes) and %x (%d bytes)", e.Name(), sa, len(a), sb, len(b))
		}
	}
	if others, _ := os.ReadDir(dist(dirs[1])); len(others) != len(names) {
		t.Errorf("the builds wrote %d and %d files to web/dist", len(names), len(others))
	}

	// The hash make prints is the SHA-256 of the wasm it wrote, the one a
	// browser computes over the bytes it instantiates (boot.js).
	wasm, err := os.ReadFile(filepath.Join(dist(dirs[0]), "parley.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	for i := range dirs {
		m := clientHashLine.FindStringSubmatch(outs[i])
		if m == nil {
			t.Fatalf("make wasm in %s printed no client hash line:\n%s", dirs[i], outs[i])
		}
		if m[1] != hex.EncodeToString(sum[:]) {
			t.Errorf("make wasm printed client SHA-256 %s, but parley.wasm hashes to %x", m[1], sum)
		}
	}
	t.Logf("client SHA-256 %x, reproduced in two clones", sum)
}
