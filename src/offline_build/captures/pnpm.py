"""The pnpm capture: pnpm's store and metadata cache after the step ran online.

Capture mode points ``store-dir`` and ``cache-dir`` (pnpm reads them from
``npm_config_*``) into the capture folder; offline both are mounted
read-write and pnpm runs with ``offline`` on, so a package it lacks fails at
once with ``ERR_PNPM_NO_OFFLINE_*``, which names it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from .. import capture_names as names
from .base import Package
from .lang import LangCapture
from .npm import npm_package

# A package in pnpm's store (v3: pnpm 8 and 9) is its files by hash and an index of them, named by the tarball's sha512.
_INDEX = re.compile(r"[^/]+/store/v\d+/files/(?P<head>[0-9a-f]{2})/(?P<tail>[0-9a-f]{126})-index\.json")


class PnpmCapture(LangCapture):
    name = names.PNPM
    rw = True
    missing = re.compile(r"ERR_PNPM_NO_OFFLINE_\w+\s+Failed to resolve (\S+)|ERR_PNPM_NO_OFFLINE_\w+.*?from \S+?/([^/\s]+)/-/")
    changed = "package.json or pnpm-lock.yaml"

    def serve_env(self, target: str) -> str:
        return f"npm_config_store_dir={target}/store npm_config_cache_dir={target}/cache npm_config_offline=true"

    def capture_env(self, out: str) -> str:
        return f"npm_config_store_dir={out}/store npm_config_cache_dir={out}/cache"

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """Each package in pnpm's store, by its index file: pnpm keeps no tarball, so there is no file to hash,
        but the index's name is the tarball's sha512 (seen with pnpm 9.15)."""
        found = []
        for path in paths:
            if (m := _INDEX.fullmatch(path)) and (index := json.loads(read(path))).get("name"):
                found.append(npm_package(index["name"], str(index["version"]), path,
                                         sha512=m["head"] + m["tail"], whole=False))
        return found


PNPM = PnpmCapture()
