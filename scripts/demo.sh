#!/usr/bin/env bash
# The demo: the whole offline loop on examples/demo, on real engines.
#   1. export on the online engine (it has the network)
#   2. carry the bundle to a fresh checkout for the air-gapped engine
#   3. diagnose (fails: nothing set up yet), setup, diagnose again
#   4. build every service there, then prove the bundle with verify
# It works in a fresh temporary folder, removed on exit; KEEP=1 keeps it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/venv.sh"
hosts=$("$ROOT/scripts/engines.sh" up)
host() { sed -n "s/^$1=//p" <<<"$hosts"; }
"$ROOT/scripts/engines.sh" reset offline
ob="$ROOT/.venv/bin/offline-build"
work=$(mktemp -d "${TMPDIR:-/tmp}/offline-build-demo.XXXXXX")
if [[ -n ${KEEP:-} ]]; then
    trap 'echo; echo "demo files kept in $work (KEEP is set): remove it when done"' EXIT
else
    trap 'rm -rf "$work"' EXIT  # one folder per run would pile up; KEEP=1 to look inside
fi
step() { printf '\n\033[1m### %s\033[0m\n' "$*"; }

step "online machine: offline.export"
cp -r "$ROOT/examples/demo" "$work/online"
rm -rf "$work/online/build-cache"
(cd "$work/online" && "$ob" offline.export --host "$(host online)")

step "carry build-cache-*.tar to the offline machine"
cp -r "$ROOT/examples/demo" "$work/offline"
rm -rf "$work/offline/build-cache"
mkdir -p "$work/offline/build-cache"
cp "$work"/online/build-cache/build-cache-*.tar "$work/offline/build-cache/"
ls -l "$work"/offline/build-cache/

cd "$work/offline"
step "offline machine: offline.diagnose before setup (expected to fail)"
"$ob" offline.diagnose --host "$(host offline)" --quick || echo "(diagnose exited $?: as expected, nothing is set up yet)"

step "offline machine: offline.setup"
"$ob" offline.setup --host "$(host offline)"

step "offline machine: offline.diagnose"
"$ob" offline.diagnose --host "$(host offline)"

step "offline machine: offline.build (the engine has no network at all)"
"$ob" offline.build --host "$(host offline)"
for s in backend worker web; do
    docker -H "$(host offline)" run --rm --network none "demo/$s:1.0.0"
done

step "proof before the trip: offline.verify on an empty engine"
"$ROOT/scripts/engines.sh" reset legacy >/dev/null
"$ob" offline.verify --host "$(host legacy)"
