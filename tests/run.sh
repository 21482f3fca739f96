#!/usr/bin/env bash
# Installs everything the test suite needs, then runs all of it: unit, API and browser tests.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -k login -x`).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

# The OpenID Connect browser test's relying party is openid-client (Node), from the npm registry,
# at the versions package-lock.json pins.
(cd e2e/oidc-rp && npm ci --no-audit --no-fund --loglevel=error)

# Browser tests drive Debian's Chromium (Playwright's own browser download is not used); the
# CJK font makes their screenshots of Japanese pages readable; the forward-auth test runs nginx.
missing=""
[ -x /usr/bin/chromium ] || missing="chromium"
[ -x /usr/sbin/nginx ] || missing="$missing nginx"
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing="$missing fonts-noto-cjk"
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

exec .venv/bin/python -m pytest "$@"
