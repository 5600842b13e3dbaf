// Package cryptobench holds the benchmarks that bench/crypto.sh (make bench)
// runs natively and compiled to wasm under Node, next to libsignal running
// the same workloads (bench/libsignal). The workloads live in the package's
// tests; see bench/README.md for what each one measures.
//
// The package has no API: this file exists so that the directory is a
// package outside its tests too.
package cryptobench
