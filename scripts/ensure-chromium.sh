#!/usr/bin/env bash
# The browser tests need Debian's chromium. Install it when we can (root with
# apt-get); otherwise stop with a message that says what to do. Never skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -n "${PARLEY_CHROMIUM:-}" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium is missing: installing Debian's chromium package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  command -v chromium >/dev/null && exit 0
fi
echo "error: the browser tests need Chromium and it is not installed." >&2
echo "       install Debian's package (sudo apt-get install chromium)" >&2
echo "       or set PARLEY_CHROMIUM=/path/to/chromium" >&2
exit 1
