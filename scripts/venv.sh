#!/usr/bin/env bash
# Create .venv with offline-build and its test dependencies (idempotent).
# Sourced by scripts/test.sh and scripts/demo.sh.
#
# The replay capture's proxy (mitmproxy 12) needs Python 3.12 or newer: take
# $PYTHON when set, else the first python3.13/python3.12 on PATH, else
# pyenv's 3.13/3.12, else python3 (then the replay capture is unavailable and
# its tests fail with that message).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pick_python() {
    local candidate prefix
    for candidate in python3.13 python3.12; do
        if command -v "$candidate" >/dev/null && "$candidate" -c '' 2>/dev/null; then
            command -v "$candidate"; return
        fi
    done
    if command -v pyenv >/dev/null; then
        for candidate in 3.13 3.12; do
            if prefix=$(pyenv prefix "$candidate" 2>/dev/null) && [[ -x $prefix/bin/python3 ]]; then
                echo "$prefix/bin/python3"; return
            fi
        done
    fi
    command -v python3
}
PYTHON=${PYTHON:-$(pick_python)}
want=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ -x $ROOT/.venv/bin/python ]]; then
    have=$("$ROOT/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    # A venv of another Python (an older checkout's) is made again.
    [[ $have == "$want" ]] || rm -rf "$ROOT/.venv"
fi
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
