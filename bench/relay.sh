#!/usr/bin/env bash
# make bench-relay: the relay's load test (bench/relaybench). It starts the
# relay in a child process with fsync on, opens idle and active device
# sockets over loopback and prints medians of RELAY_RUNS runs.
#   RELAY_RUNS=3 RELAY_IDLE=1000 RELAY_SENDERS=100 RELAY_DURATION=5s ./bench/relay.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/relaybench ./bench/relaybench
exec bin/relaybench -runs "${RELAY_RUNS:-3}" -idle "${RELAY_IDLE:-1000}" \
  -senders "${RELAY_SENDERS:-100}" -duration "${RELAY_DURATION:-5s}" "$@"
