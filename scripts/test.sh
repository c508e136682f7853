#!/usr/bin/env bash
# The test command: sets up everything it needs (virtual environment,
# dependencies, Docker engines, base image), then runs the whole suite.
# Extra arguments go to pytest. With CI=true, engine tests fail (never skip)
# when no engine can be started.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/venv.sh"
"$ROOT/scripts/engines.sh" up >/dev/null
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
