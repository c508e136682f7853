"""The uv capture: uv's cache after the step ran online, links turned into files.

Capture mode runs the step with ``UV_CACHE_DIR`` in a scratch folder, then
copies the cache into the capture folder with its symbolic links followed
(uv links wheel entries to unpacked archives; a bundle carries regular files
only, and uv reads the copied folders as it read the links; seen with uv
0.13). Offline the copy is mounted read-write as the cache, with
``UV_OFFLINE=1``: ``uv sync`` and ``uv pip install`` take every package from
it, an sdist's wheel included (built online, in the step's own stage).
"""

from __future__ import annotations

import re

from .lang import LangCapture, StepNeed, ca_env

_SCRATCH = "/tmp/.offline-build-uv-cache"


class UvCapture(LangCapture):
    name = "uv"
    rw = True
    ca_variables = ("SSL_CERT_FILE",)
    missing = re.compile(r"Because (\S+?) was not found in the cache|wasn't found in the cache for `?([^`\s]+)")
    changed = "the lockfile or the requirements"

    def serve_env(self, target: str) -> str:
        # Copy, not hardlink: the cache is on another file system (a bind mount).
        return f"UV_CACHE_DIR={target} UV_OFFLINE=1 UV_LINK_MODE=copy UV_NO_PROGRESS=1"

    def capture_command(self, command: str, out: str, need: StepNeed) -> str:
        return (f"{ca_env(self.ca_variables)}rm -rf {_SCRATCH} && export UV_CACHE_DIR={_SCRATCH} UV_LINK_MODE=copy "
                f"&& ( {command} ) && mkdir -p {out} && cp -RL {_SCRATCH}/. {out}/ && rm -rf {_SCRATCH}")


UV = UvCapture()
