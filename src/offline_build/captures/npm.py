"""The npm capture: npm's own cache after the step ran online, served with ``npm_config_offline``.

Capture mode runs the step as written with ``npm_config_cache`` pointed at
the capture folder, so ``npm ci`` / ``npm install`` leave there every
tarball and package document they fetched. Offline the folder is mounted
read-write (npm updates its index; the writes are thrown away) and npm runs
with ``offline`` on: what is not in the cache fails at once, naming the package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from .. import capture_names as names
from .base import Package
from .lang import LangCapture

_REQUEST = "make-fetch-happen:request-cache:"  # the cacache key of what npm fetched over HTTP: this, then the URL
_STRENGTH = ("sha512", "sha384", "sha256", "sha1")


class NpmCapture(LangCapture):
    name = names.NPM
    rw = True
    missing = re.compile(r"request to \S+?/([^/\s]+) failed: cache mode is 'only-if-cached'")
    changed = "package.json or its lockfile"

    def serve_env(self, target: str) -> str:
        return (f"npm_config_cache={target} npm_config_offline=true npm_config_audit=false "
                "npm_config_fund=false npm_config_update_notifier=false")

    def capture_env(self, out: str) -> str:
        return f"npm_config_cache={out} npm_config_update_notifier=false npm_config_fund=false"

    def packages(self, paths: Sequence[str], read: Callable[[str], bytes]) -> list[Package]:
        """Each tarball in npm's cache (cacache), named by the registry URL its index entry was fetched from.

        The index (``_cacache/index-v5/``) maps a request to the content's
        integrity, and the content is filed under that hash
        (``content-v2/sha512/ab/cd/ef...``): the tarball is found without reading it.
        Package documents and local ``file:`` tarballs (``pacote:tarball:file:...``) have no
        registry tarball path and are left out.
        """
        found = []
        for path in paths:
            if "/_cacache/index-v5/" not in path:
                continue
            cache = path.split("/_cacache/", 1)[0]
            for entry in _live_entries(read(path)):
                named, digest = _tarball(str(entry["key"])), integrity_hex(str(entry["integrity"]))
                if named and digest:
                    algorithm, hexed = digest
                    content = f"{cache}/_cacache/content-v2/{algorithm}/{hexed[:2]}/{hexed[2:4]}/{hexed[4:]}"
                    found.append(npm_package(*named, content, sha512=hexed if algorithm == "sha512" else ""))
        return found


def _live_entries(raw: bytes) -> list[dict[str, Any]]:
    """A cacache index bucket's entries: per key the last whole line (its sha1 checks), unless that one deletes it."""
    latest: dict[str, dict[str, Any]] = {}
    for line in raw.decode(errors="replace").splitlines():
        sha1, _, body = line.partition("\t")
        if hashlib.sha1(body.encode()).hexdigest() == sha1:  # cacache appends: a torn last line fails this
            entry = json.loads(body)
            latest[str(entry.get("key"))] = entry
    return [e for e in latest.values() if e.get("integrity")]


def _tarball(key: str) -> tuple[str, str] | None:
    """(name, version) of a registry tarball request: ``<registry>/@scope/name/-/name-1.0.0.tgz``."""
    left, sep, file = unquote(urlsplit(key.removeprefix(_REQUEST)).path).rpartition("/-/")
    parts = left.split("/")
    name = "/".join(parts[-2:]) if len(parts) > 2 and parts[-2].startswith("@") else parts[-1]
    prefix = name.rsplit("/", 1)[-1] + "-"
    if not sep or "/" in file or not file.startswith(prefix) or not file.endswith(".tgz"):
        return None
    return name, file[len(prefix):-len(".tgz")]


def integrity_hex(integrity: str) -> tuple[str, str] | None:
    """The strongest hash of a subresource integrity string (``sha512-<base64>``) as (algorithm, hex)."""
    found = {}
    for part in integrity.split():
        algorithm, _, value = part.partition("-")
        try:
            found[algorithm] = base64.b64decode(value.split("?", 1)[0], validate=True).hex()
        except (binascii.Error, ValueError):
            continue
    best = next((a for a in _STRENGTH if a in found), None)
    return (best, found[best]) if best else None


def npm_package(name: str, version: str, path: str, *, sha512: str = "", whole: bool = True) -> Package:
    """An npm package: a scope (``@types/ms``) is the purl's namespace."""
    scope, _, bare = name.rpartition("/")
    return Package("npm", bare, version, path, scope, sha512=sha512, whole=whole)


NPM = NpmCapture()
