// Package parley carries the browser client's static files so the server is
// one self-contained binary: index.html and everything under web/, including
// the build outputs in web/dist (the wasm, Go's wasm_exec.js loader and their
// precompressed .br/.gz copies, made by `make wasm`).
package parley

import "embed"

// Assets holds index.html and web/. A build without `make wasm` still
// compiles (web/dist is then empty) so server-only tests need no wasm.
//
//go:embed index.html web
var Assets embed.FS
