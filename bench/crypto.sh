#!/usr/bin/env bash
# make bench: Parley's crypto core, natively and compiled to wasm (Node),
# side by side with libsignal's native addon on the same workloads, in one
# invocation, printed as one table (see bench/README.md).
#
# The rounds interleave the three runners (native, wasm, libsignal) so a
# burst of load from someone else on this shared machine lands on all three
# rather than on one; every figure is a median over the rounds.
#
# Environment:
#   BENCH_COUNT  rounds (default 5)
#   BENCH_TIME   go test -benchtime per benchmark per round (default 1s)
#   BENCH_RE     which workloads to run, an unanchored regexp on the name
#                without "Benchmark", e.g. 'Stream|PingPong' (default .)
#   BENCH_OUT    directory for the raw outputs (default: a fresh temp dir)
#   BENCH_STRICT=1  exit non-zero when a target fails or is unmeasured
set -euo pipefail
cd "$(dirname "$0")/.."

count="${BENCH_COUNT:-5}"
benchtime="${BENCH_TIME:-1s}"
re="${BENCH_RE:-.}"
out="${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/parley-bench.XXXXXX")}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
pkg=./bench/cryptobench
lsdir=bench/libsignal
wasmpath="$(go env GOROOT)/lib/wasm"

# libsignal from the lockfile, only when node_modules is missing or stale.
if [[ ! -f "$lsdir/node_modules/.package-lock.json" ||
      "$lsdir/package-lock.json" -nt "$lsdir/node_modules/.package-lock.json" ]]; then
  echo "bench: npm ci in $lsdir" >&2
  (cd "$lsdir" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi

# Compile once, so the rounds time only the benchmarks.
echo "bench: building $pkg (native and js/wasm)" >&2
go test -c -o "$out/cryptobench.native" "$pkg"
GOOS=js GOARCH=wasm go test -c -o "$out/cryptobench.wasm" "$pkg"

load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
: >"$out/native.txt"
: >"$out/wasm.txt"
: >"$out/libsignal.jsonl"
# libsignal times each run for about as long as go test's benchtime.
lstime=1
[[ "$benchtime" =~ ^([0-9]*\.?[0-9]+)s$ ]] && lstime="${BASH_REMATCH[1]}"
for ((i = 1; i <= count; i++)); do
  echo "bench: round $i/$count: native" >&2
  (cd "$pkg" && "$out/cryptobench.native" -test.run '^$' -test.bench "$re" \
    -test.benchtime "$benchtime" -test.benchmem) >>"$out/native.txt" 2>&1 ||
    { cat "$out/native.txt" >&2; exit 1; }
  echo "bench: round $i/$count: wasm (Node $(node --version))" >&2
  (cd "$pkg" && PATH="$wasmpath:$PATH" go_js_wasm_exec "$out/cryptobench.wasm" \
    -test.run '^$' -test.bench "$re" -test.benchtime "$benchtime" -test.benchmem) >>"$out/wasm.txt" 2>&1 ||
    { cat "$out/wasm.txt" >&2; exit 1; }
  echo "bench: round $i/$count: libsignal" >&2
  node "$lsdir/bench.mjs" -runs 1 -time "$lstime" -only "$re" >>"$out/libsignal.jsonl"
done

strict=()
[[ "${BENCH_STRICT:-}" == 1 ]] && strict=(-strict)
go run ./bench/cmd/benchtable -native "$out/native.txt" -wasm "$out/wasm.txt" \
  -libsignal "$out/libsignal.jsonl" "${strict[@]}"
echo
# The machine is shared: say how busy it was, so a reader can weigh the run.
echo "load average (1/5/15 min): $load_before before, $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?') after; $(nproc) CPUs"
echo "raw outputs: $out" >&2
