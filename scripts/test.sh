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
# Two workers (pytest-xdist), each with an engine set of its own: the engine tests leave a core idle
# half the time when run one at a time. OFFLINE_BUILD_TEST_WORKERS=0 runs them in this process.
workers=${OFFLINE_BUILD_TEST_WORKERS:-2}
parallel=()
if [[ $workers != 0 ]]; then parallel=(-n "$workers" --dist loadgroup); fi
exec "$ROOT/.venv/bin/python" -m pytest "${parallel[@]}" "$@"
