"""The npm capture: npm's own cache after the step ran online, served with ``npm_config_offline``.

Capture mode runs the step as written with ``npm_config_cache`` pointed at
the capture folder, so ``npm ci`` / ``npm install`` leave there every
tarball and package document they fetched. Offline the folder is mounted
read-write (npm updates its index; the writes are thrown away) and npm runs
with ``offline`` on: what is not in the cache fails at once, naming the package.
"""

from __future__ import annotations

import re

from .lang import LangCapture


class NpmCapture(LangCapture):
    name = "npm"
    rw = True
    missing = re.compile(r"request to \S+?/([^/\s]+) failed: cache mode is 'only-if-cached'")
    changed = "package.json or its lockfile"

    def serve_env(self, target: str) -> str:
        return (f"npm_config_cache={target} npm_config_offline=true npm_config_audit=false "
                "npm_config_fund=false npm_config_update_notifier=false")

    def capture_env(self, out: str) -> str:
        return f"npm_config_cache={out} npm_config_update_notifier=false npm_config_fund=false"


NPM = NpmCapture()
