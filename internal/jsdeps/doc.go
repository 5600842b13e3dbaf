// Package jsdeps holds only a test: the layering rules of DESIGN.md, checked
// against the real import graph instead of written in comments (the idea of
// tailscale's tstest/jsdeps).
//
//   - The browser client (GOOS=js ./wasm) must not pull in net/http, the
//     relay's store (bbolt) or any server/ package: they would cost the wasm
//     budget (TestClientWasmSize) and mean client code reached into the
//     server.
//   - crypto/ and client/ never import syscall/js or a JS binding; wasm/ is
//     the only package that touches JavaScript.
//   - crypto/ imports neither client/ nor server/, and client/ does not
//     import server/: the protocol they share is package relay.
package jsdeps
