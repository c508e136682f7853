"""The yarn (classic) capture: yarn's cache after the step ran online.

Capture mode runs the step with ``YARN_CACHE_FOLDER`` pointed at the capture
folder. Offline the folder is mounted read-write as the cache: with the
lockfile unchanged, yarn links every package from it without asking the
registry (seen with yarn 1.22). ``YARN_OFFLINE`` is not a setting yarn reads,
and a ``--offline`` added to the user's command would be a rewrite of it: a
package missing from the cache fails at the air gap instead, and is named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from .. import capture_names as names
from .base import Package
from .lang import LangCapture
from .npm import integrity_hex, npm_package


class YarnCapture(LangCapture):
    name = names.YARN
    rw = True
    missing = re.compile(r'An unexpected error occurred: "\S+?/([^/"\s]+): (?:getaddrinfo|connect|request)'
                         r'|Couldn\'t find any versions for "([^"]+)"')
    changed = "package.json or yarn.lock"

    def serve_env(self, target: str) -> str:
        return f"YARN_CACHE_FOLDER={target} YARN_ENABLE_TELEMETRY=0"

    def capture_env(self, out: str) -> str:
        return f"YARN_CACHE_FOLDER={out}"

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """Each package in yarn's cache: its ``.yarn-metadata.json`` names it, the ``.yarn-tarball.tgz`` beside it is it
        (``v6/npm-<name>-<version>-<hash>-integrity/node_modules/<name>/``; seen with yarn 1.22)."""
        have = set(paths)
        found = []
        for path in (p for p in paths if p.endswith("/.yarn-metadata.json")):
            meta = json.loads(read(path))
            tarball = f"{path.rsplit('/', 1)[0]}/.yarn-tarball.tgz"
            digest = integrity_hex(str((meta.get("remote") or {}).get("integrity") or ""))
            found.append(npm_package(meta["manifest"]["name"], meta["manifest"]["version"],
                                     tarball if tarball in have else path.rsplit("/", 1)[0], whole=tarball in have,
                                     sha512=digest[1] if digest and digest[0] == "sha512" else ""))
        return found


YARN = YarnCapture()
