#!/usr/bin/env bash
# Create .venv with offline-build and its test dependencies (idempotent).
# Sourced by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
if [[ ! -x $ROOT/.venv/bin/python ]]; then
    "$PYTHON" -m venv "$ROOT/.venv"
fi
# Reinstall only when pyproject.toml changed since the last install.
stamp=$ROOT/.venv/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)
if [[ ! -f $stamp ]]; then
    "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]"
    rm -f "$ROOT"/.venv/.installed-*
    touch "$stamp"
fi
