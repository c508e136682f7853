"""The Go modules capture: the module downloads a ``go`` step made online, served as a file proxy.

Capture mode runs the step as written (its ``GOPROXY``, ``GOPRIVATE`` and
``GOFLAGS`` included) with an empty module cache of its own, then keeps the
cache's ``download`` folder: the ``.info``, ``.mod`` and ``.zip`` of every
module version the step resolved, laid out in the GOPROXY protocol (the go
command documents that folder as usable with ``GOPROXY=file://``). The
checksum database's tiles and the lock files are left behind.

Offline the step runs with ``GOPROXY=file://<capture>``: go downloads from
it into the stage's module cache exactly as it did from the network, and
checks every module against ``go.sum`` as always. ``GOSUMDB=off`` only
stops it asking the checksum database about a module ``go.sum`` lacks (the
database is not reachable; go then refuses the module anyway with ``missing
go.sum entry``); ``GOPRIVATE``/``GONOPROXY`` are emptied so no module is
sent to its own server instead of the capture.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .. import capture_names as names
from .base import Package
from .lang import LangCapture, StepNeed, ca_env

_SCRATCH = "/tmp/.offline-build-gomodcache"
_SOURCE = re.compile(r"[^/]+/(?P<module>.+)/@v/(?P<version>[^/]+)\.zip")  # <key>/<module>/@v/<version>.zip


class GoCapture(LangCapture):
    name = names.GO
    ca_variables = ("SSL_CERT_FILE",)
    missing = re.compile(r"(\S+@v[^:\s]+): reading file://\S+: no such file or directory")
    changed = "go.mod or go.sum"

    def serve_env(self, target: str) -> str:
        return f"GOPROXY=file://{target} GOSUMDB=off GOPRIVATE= GONOPROXY= GONOSUMDB="

    def capture_command(self, command: str, out: str, need: StepNeed) -> str:
        download = f"{_SCRATCH}/cache/download"
        return (f"{ca_env(self.ca_variables)}rm -rf {_SCRATCH} && export GOMODCACHE={_SCRATCH} "
                f'GOFLAGS="${{GOFLAGS:+$GOFLAGS }}-modcacherw" && ( {command} ) && mkdir -p {out} '
                f"&& if [ -d {download} ]; then cp -R {download}/. {out}/; fi "
                f"&& rm -rf {out}/sumdb && find {out} -name '*.lock' -type f -delete && rm -rf {_SCRATCH}")

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """Each module version whose source go downloaded (its ``.zip``; a ``.mod`` alone only fed the module graph).

        The proxy layout writes a capital as ``!`` and the small letter
        (case-insensitive file systems): ``github.com/!azure/...`` is ``github.com/Azure/...``.
        """
        found = []
        for m in (_SOURCE.fullmatch(path) for path in paths):
            if m:
                module, version = (re.sub(r"!([a-z])", lambda c: c[1].upper(), s) for s in (m["module"], m["version"]))
                namespace, _, name = module.rpartition("/")
                found.append(Package("golang", name, version, m[0], namespace))
        return found


GO = GoCapture()
