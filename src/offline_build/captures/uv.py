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
from collections.abc import Callable, Sequence

from .base import Package
from .lang import LangCapture, StepNeed, ca_env
from .pip import canonical_name, distribution

_SCRATCH = "/tmp/.offline-build-uv-cache"
# uv keeps a wheel unpacked (archive-v0/<id>/<name>-<version>.dist-info/...), and as a file only the wheels it
# built from an sdist (sdists-v<n>/<index>/<name>/<version>/<id>/<file>.whl); seen with uv 0.13.
_UNPACKED = re.compile(r"(?P<key>[^/]+)/(?P<at>archive-v\d+/[^/]+)/"
                       r"(?P<name>[^-/]+)-(?P<version>[^-/]+)\.dist-info/METADATA")
_BUILT = re.compile(r"[^/]+/sdists-v\d+/.+\.whl")


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

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """The wheels uv built (files), then every other package as uv keeps it: an unpacked wheel, no file to hash.

        A built wheel is unpacked too; it is listed once, as the file.
        """
        built = [p for path in paths if _BUILT.fullmatch(path) and (p := distribution(path))]
        unpacked = [Package("pypi", m["name"], m["version"], f"{m['key']}/{m['at']}", whole=False)
                    for m in (_UNPACKED.fullmatch(path) for path in paths) if m]

        def same(p: Package) -> tuple[str, str, str]:
            return p.path.split("/", 1)[0], canonical_name(p.name), p.version

        known = {same(p) for p in built}
        return built + [p for p in unpacked if same(p) not in known]


UV = UvCapture()
