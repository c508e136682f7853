"""The npm capture: npm's own cache after the step ran online, served with ``npm_config_offline``.

Capture mode runs the step as written with ``npm_config_cache`` pointed at
the capture folder, so ``npm ci`` / ``npm install`` leave there every
tarball and package document they fetched. Offline the folder is mounted
read-write (npm updates its index; the writes are thrown away) and npm runs
with ``offline`` on: what is not in the cache fails at once, naming the package.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from .lang import LangCapture, StepNeed, ca_env, missing_package_fix

_NOT_CACHED = re.compile(r"request to \S+?/([^/\s]+) failed: cache mode is 'only-if-cached'")


class NpmCapture(LangCapture):
    name = "npm"
    rw = True

    def serve_env(self, target: str) -> str:
        return (f"npm_config_cache={target} npm_config_offline=true npm_config_audit=false "
                "npm_config_fund=false npm_config_update_notifier=false")

    def capture_command(self, command: str, out: str, need: StepNeed) -> str:
        return (f"{ca_env(('NODE_EXTRA_CA_CERTS',))}mkdir -p {out} && export npm_config_cache={out} "
                f"npm_config_update_notifier=false npm_config_fund=false && {command}")


    def explain(self, step_text: str, message: str) -> tuple[str, str] | None:
        found = _NOT_CACHED.search(message)
        if "npm_config_offline=true" not in step_text or not found:
            return None
        return (f"{unquote(found.group(1))} is not in the bundle's npm capture: package.json or its lockfile "
                "changed since the export, and offline npm installs only what the export captured",
                missing_package_fix())


NPM = NpmCapture()
