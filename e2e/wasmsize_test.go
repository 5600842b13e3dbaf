package e2e

import (
	"io/fs"
	"testing"

	"github.com/parley-im/parley"
)

// MaxClientWasmBrotli is issue 6's budget for the whole client wasm as
// the server sends it (brotli, made by `make wasm`), in bytes (1.2 MB).
const MaxClientWasmBrotli = 1_200_000

// TestClientWasmSize keeps the client within its download budget: what a
// first visit costs before anything runs. See the Makefile's WASM_GCFLAGS,
// wasm/wasmseg and wasm/jsonenc for what keeps it there.
func TestClientWasmSize(t *testing.T) {
	br, err := fs.ReadFile(parley.Assets, "web/dist/parley.wasm.br")
	if err != nil {
		t.Fatalf("the wasm client is not built into this binary: run `make wasm` (make test does) before the e2e tests: %v", err)
	}
	raw, _ := fs.Stat(parley.Assets, "web/dist/parley.wasm")
	var rawSize int64
	if raw != nil {
		rawSize = raw.Size()
	}
	t.Logf("parley.wasm: %d bytes, %d brotli (budget %d)", rawSize, len(br), MaxClientWasmBrotli)
	if len(br) > MaxClientWasmBrotli {
		t.Fatalf("parley.wasm is %d bytes brotli'd, over the %d-byte budget (issue 6)", len(br), MaxClientWasmBrotli)
	}
}
