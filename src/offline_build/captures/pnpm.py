"""The pnpm capture: pnpm's store and metadata cache after the step ran online.

Capture mode points ``store-dir`` and ``cache-dir`` (pnpm reads them from
``npm_config_*``) into the capture folder; offline both are mounted
read-write and pnpm runs with ``offline`` on, so a package it lacks fails at
once with ``ERR_PNPM_NO_OFFLINE_*``, which names it.
"""

from __future__ import annotations

import re

from .lang import LangCapture


class PnpmCapture(LangCapture):
    name = "pnpm"
    rw = True
    missing = re.compile(r"ERR_PNPM_NO_OFFLINE_\w+\s+Failed to resolve (\S+)|ERR_PNPM_NO_OFFLINE_\w+.*?from \S+?/([^/\s]+)/-/")
    changed = "package.json or pnpm-lock.yaml"

    def serve_env(self, target: str) -> str:
        return f"npm_config_store_dir={target}/store npm_config_cache_dir={target}/cache npm_config_offline=true"

    def capture_env(self, out: str) -> str:
        return f"npm_config_store_dir={out}/store npm_config_cache_dir={out}/cache"


PNPM = PnpmCapture()
