#!/usr/bin/env bash
# make bench-relay: the relay's load test (bench/relaybench) and, in the
# same run, the same workload on NATS JetStream with fsync always
# (bench/relayjs, its own module so nats-server stays out of Parley's
# go.mod). Both start their server in a child process and print medians of
# RELAY_RUNS runs; the relay's table ends with the ratio.
#   RELAY_RUNS=3 RELAY_IDLE=1000 RELAY_SENDERS=100 RELAY_DURATION=5s ./bench/relay.sh
#   RELAY_JETSTREAM=0 ./bench/relay.sh     # skip the baseline
# make bench-relay-hostile (./bench/relay.sh hostile): issue 14's combined
# flood against bin/parley-server instead; extra arguments go to relaybench
# (-hostile-duration, -hostile-slow, ...), RELAY_RUNS defaults to 1.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/relaybench ./bench/relaybench
if [ "${1:-}" = hostile ]; then
  shift
  [ -x bin/parley-server ] || { echo "bench-relay hostile: bin/parley-server missing (make server)" >&2; exit 1; }
  exec bin/relaybench -runs "${RELAY_RUNS:-1}" -hostile bin/parley-server "$@"
fi
runs="${RELAY_RUNS:-3}" senders="${RELAY_SENDERS:-100}" dur="${RELAY_DURATION:-5s}"
baseline=()
if [ "${RELAY_JETSTREAM:-1}" != 0 ]; then
  if (cd bench/relayjs && go build -o ../../bin/relayjs .); then
    bin/relayjs -runs "$runs" -senders "$senders" -duration "$dur" -json bin/relayjs.json
    baseline=(-baseline bin/relayjs.json)
  else
    echo "bench-relay: JetStream baseline did not build; relay figures only" >&2
  fi
fi
exec bin/relaybench -runs "$runs" -idle "${RELAY_IDLE:-1000}" -senders "$senders" -duration "$dur" "${baseline[@]}" "$@"
