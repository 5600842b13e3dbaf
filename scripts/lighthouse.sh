#!/usr/bin/env bash
# Lighthouse (npm lighthouse@12.2.3, the last release that runs on Node 20)
# against a freshly built local server: accessibility and best practices
# must both score at least $MIN (95). Version 12 has no PWA category;
# installability is asserted in the e2e tests (Page.getInstallabilityErrors).
#
#   make lighthouse            (builds first)
#   scripts/lighthouse.sh      (uses bin/parley-server as built)
set -euo pipefail
cd "$(dirname "$0")/.."

MIN=${MIN:-95}
LH_VERSION=12.2.3
LH_DIR=${LH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/parley-lighthouse-$LH_VERSION}
CHROME=${PARLEY_CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [[ -z "$CHROME" ]]; then
  echo "lighthouse: Chromium not found (run make chromium or set PARLEY_CHROMIUM)" >&2
  exit 1
fi
if [[ ! -x "$LH_DIR/node_modules/.bin/lighthouse" ]]; then
  mkdir -p "$LH_DIR"
  npm install --prefix "$LH_DIR" --no-audit --no-fund --silent "lighthouse@$LH_VERSION"
fi

work=$(mktemp -d)
port=$(( 20000 + RANDOM % 20000 ))
bin/parley-server -addr "127.0.0.1:$port" -data "$work/data" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

CHROME_PATH=$CHROME "$LH_DIR/node_modules/.bin/lighthouse" "http://127.0.0.1:$port/" \
  --only-categories=accessibility,best-practices \
  --chrome-flags="--headless=new --no-sandbox --disable-gpu" \
  --output=json --output-path="$work/report.json" --quiet

node - "$work/report.json" "$MIN" <<'JS'
const [report, min] = [require(process.argv[2]), Number(process.argv[3])];
let ok = true;
for (const [id, c] of Object.entries(report.categories)) {
  const score = Math.round(c.score * 100);
  console.log(`lighthouse ${id}: ${score}`);
  if (score < min) ok = false;
}
for (const a of Object.values(report.audits)) {
  if (a.score !== null && a.score < 1 && !['informative', 'notApplicable', 'manual'].includes(a.scoreDisplayMode)) {
    console.log(`  not passed: ${a.id} (${a.title})`);
  }
}
if (!ok) { console.error(`lighthouse: a score is below ${min}`); process.exit(1); }
JS
