"""The yarn (classic) capture: yarn's cache after the step ran online.

Capture mode runs the step with ``YARN_CACHE_FOLDER`` pointed at the capture
folder. Offline the folder is mounted read-write as the cache: with the
lockfile unchanged, yarn links every package from it without asking the
registry (seen with yarn 1.22). ``YARN_OFFLINE`` is not a setting yarn reads,
and a ``--offline`` added to the user's command would be a rewrite of it: a
package missing from the cache fails at the air gap instead, and is named.
"""

from __future__ import annotations

import re

from .lang import LangCapture


class YarnCapture(LangCapture):
    name = "yarn"
    rw = True
    missing = re.compile(r'An unexpected error occurred: "\S+?/([^/"\s]+): (?:getaddrinfo|connect|request)'
                         r'|Couldn\'t find any versions for "([^"]+)"')
    changed = "package.json or yarn.lock"

    def serve_env(self, target: str) -> str:
        return f"YARN_CACHE_FOLDER={target} YARN_ENABLE_TELEMETRY=0"

    def capture_env(self, out: str) -> str:
        return f"YARN_CACHE_FOLDER={out}"


YARN = YarnCapture()
