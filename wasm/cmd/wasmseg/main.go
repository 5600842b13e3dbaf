// Command wasmseg joins the data segments of a WebAssembly module that Go's
// linker split at every run of zeros (see package wasmseg), rewriting the
// file in place. `make wasm` runs it on the client before compressing it.
//
//	go run ./wasm/cmd/wasmseg web/dist/parley.wasm
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/parley-im/parley/wasm/wasmseg"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: wasmseg FILE.wasm")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "wasmseg:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() > wasmseg.MaxModule {
		return fmt.Errorf("%s: %d bytes, over %d", path, fi.Size(), wasmseg.MaxModule)
	}
	mod, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, st, err := wasmseg.Coalesce(mod, wasmseg.DefaultMaxGap)
	if err != nil {
		return fmt.Errorf("%s: %w (left unchanged)", path, err)
	}
	// Write beside it and rename, so an interrupted run leaves the old
	// module whole.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".wasmseg-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	fmt.Printf("%s: %d data segments joined into %d (%d zero bytes written out), %d -> %d bytes raw\n",
		filepath.Base(path), st.Before, st.After, st.Zeros, len(mod), len(out))
	return nil
}
