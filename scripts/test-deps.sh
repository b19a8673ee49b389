#!/usr/bin/env bash
# System packages the test suite drives for real: PostgreSQL's server, headless
# Chromium (pages and reports) and poppler's pdftoppm (PDF pages). Installed from
# Debian when absent and when we are allowed to (root or passwordless sudo).
set -uo pipefail
need=()
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "test-deps: missing ${need[*]} (install them with apt-get); dependent tests will say so" >&2
  exit 0
fi
echo "test-deps: installing ${need[*]} from Debian"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || echo "test-deps: could not install ${need[*]}" >&2
exit 0
