#!/usr/bin/env bash
# Runs every Go fuzz target in the module for the given time (default 3s).
# `go test -fuzz` takes one target per invocation, so we enumerate them.
set -euo pipefail
fuzztime="${1:-3s}"
cd "$(dirname "$0")/.."
count=0
while IFS= read -r pkg; do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/parley-fuzz.log 2>&1 || {
      cat /tmp/parley-fuzz.log; echo "fuzz target $pkg $target failed" >&2; exit 1; }
    count=$((count+1))
  done
done < <(go list ./...)
echo "fuzz: $count targets clean"
