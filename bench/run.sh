#!/usr/bin/env bash
# The load benchmark in one command: installs what it needs, then runs `python -m bench` with
# any arguments given (e.g. `bash bench/run.sh --only sqlite-1w --duration 20`). Prints a JSON
# summary; the full results go to bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
exec .venv/bin/python -m bench "$@"
