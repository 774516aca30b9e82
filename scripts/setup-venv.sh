#!/usr/bin/env bash
# setup-venv.sh: the Python virtual environment for test oracles and real clients (.venv, pinned in
# tests/requirements.txt). Idempotent: reinstalls only when requirements.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
req=tests/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
[[ -f $stamp && $(cat "$stamp") == "$want" ]] && exit 0
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
echo "$want" >"$stamp"
