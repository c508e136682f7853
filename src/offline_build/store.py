"""The local store: one OCI image layout holding every blob once, by digest.

BuildKit's local cache exporter and ``docker save`` (containerd image store)
both write OCI layouts, so base images and every service's cache can share a
single ``blobs/sha256`` folder: a base layer that five caches reference is
stored once. Entries in ``index.json`` are told apart by their
``org.opencontainers.image.ref.name`` annotation (``cache-<service>`` or
``base-<image slug>``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OfflineBuildError
from .files import copy_hashed, fsync_dir, fsync_path, sha256_file, write_atomic

REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
LAYOUT = {"imageLayoutVersion": "1.0.0"}
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}


class StoreError(OfflineBuildError):
    """The store is missing something or holds something broken."""


def _check_digest(actual: str, digest: str, source: Path) -> None:
    if actual != digest.split(":", 1)[1]:
        raise StoreError(f"{source}: content does not hash to its name {digest} (its sha256 is {actual})",
                         "the bytes are damaged or were replaced: take them again from their source "
                         "(export again, or copy the bundle again)")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str]
    platform: dict[str, str] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Descriptor:
        return cls(data["mediaType"], data["digest"], int(data["size"]),
                   dict(data.get("annotations") or {}), data.get("platform"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.platform:
            out["platform"] = self.platform
        return out

    @property
    def ref_name(self) -> str | None:
        return self.annotations.get(REF_NAME)

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


class Layout:
    """An OCI image layout folder (``oci-layout``, ``index.json``, ``blobs/sha256``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    def exists(self) -> bool:
        return (self.root / "index.json").is_file()

    def blob_path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexpart):
            raise StoreError(f"unsupported digest {digest!r}", "only sha256 digests are supported")
        return self.blobs / hexpart

    def index(self) -> list[Descriptor]:
        if not self.exists():
            return []
        try:
            data = json.loads((self.root / "index.json").read_text())
            return [Descriptor.from_json(d) for d in data.get("manifests", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # AttributeError: JSON, but not an object
            raise StoreError(f"{self.root / 'index.json'}: not a valid OCI index ({exc})",
                             "re-run offline.setup (or offline.export on the online machine)") from None

    def tags(self) -> dict[str, Descriptor]:
        return {d.ref_name: d for d in self.index() if d.ref_name}

    def write_index(self, descriptors: Iterable[Descriptor]) -> bool:
        """Write index.json (sorted, stable); returns whether it changed."""
        entries = sorted(descriptors, key=lambda d: (d.ref_name or "", d.digest))
        data = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": [d.to_json() for d in entries]}, indent=2).encode() + b"\n"
        path = self.root / "index.json"
        if path.is_file() and path.read_bytes() == data:
            return False
        self.blobs.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / "oci-layout", json.dumps(LAYOUT).encode())
        write_atomic(path, data)
        return True

    def read_json(self, digest: str) -> dict[str, Any]:
        try:
            return json.loads(self.blob_path(digest).read_bytes())
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from {self.root}") from None
        except ValueError as exc:
            raise StoreError(f"blob {digest} in {self.root} is not JSON ({exc})") from None

    def walk(self, roots: Iterable[Descriptor]) -> Iterator[tuple[Descriptor, bool]]:
        """Every descriptor reachable from *roots*: (descriptor, present?).

        Children of an index that are absent are still yielded (present=False)
        so callers can decide; a manifest is only opened when present.
        """
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            desc = stack.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            present = self.blob_path(desc.digest).is_file()
            yield desc, present
            if present and (desc.media_type in INDEX_TYPES or desc.media_type in MANIFEST_TYPES):
                stack.extend(_children(self.read_json(desc.digest)))

    def reachable(self, roots: Iterable[Descriptor] | None = None) -> dict[str, Descriptor]:
        """Digests reachable from *roots* (default: the whole index); raises on a missing one."""
        found: dict[str, Descriptor] = {}
        missing: list[Descriptor] = []
        for desc, present in self.walk(self.index() if roots is None else roots):
            (found.__setitem__(desc.digest, desc) if present else missing.append(desc))
        if missing:
            names = ", ".join(d.digest[:19] for d in missing[:3])
            raise StoreError(f"{len(missing)} blob(s) referenced but absent in {self.root}: {names}",
                             "re-export on the online machine: the saved image or cache is incomplete")
        return found

    def add_blob(self, source: Path, digest: str, *, move: bool = False, sha256: str | None = None) -> bool:
        """Place *source* as blob *digest*; returns whether the store lacked it.

        The name is a promise about the bytes: they are checked to hash to
        *digest* before they get it. *sha256* is what the caller already
        computed while writing *source* (setup hashes each member as it
        extracts it), so those bytes are not read a second time; without it
        a copy is hashed while it is written and a move by one read. A target
        that is there already is only trusted once it hashes to its name: one
        that does not (a poisoned or damaged store) is replaced, never skipped
        for having the right size.
        """
        target = self.blob_path(digest)
        expected = digest.split(":", 1)[1]
        had = target.is_file()
        if had and not move and sha256_file(target) == expected:
            return False  # copying would cost a write; a good target is kept
        target.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own: two merges into one store (an export's save and cache
        # merge, or two tools) must not write each other's half-placed blob.
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            if move:
                _check_digest(sha256 or sha256_file(source), digest, source)
                fsync_path(source)  # its bytes on disk before a name in the store promises them
                os.replace(source, tmp)
            else:
                _check_digest(copy_hashed(source, tmp), digest, source)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return not had

    def merge(self, other: Layout, *, retag: dict[str, str] | None = None, move: bool = False,
              hashed: dict[str, str] | None = None) -> int:
        """Bring *other*'s reachable blobs and index entries in; returns blobs added.

        Blobs go first and the index last, so an interrupted merge leaves an
        index that only names complete content; the blob folder is synced
        before the index names its new blobs. *hashed*: digest -> sha256 the
        caller computed while writing those blobs (see :meth:`add_blob`). A
        blob refused for its content stops the merge before the index changes:
        what was placed before it is correct, unreferenced content.
        """
        incoming = other.index()
        reach = other.reachable(incoming)
        known = hashed or {}
        added = sum(self.add_blob(other.blob_path(d), d, move=move, sha256=known.get(d)) for d in reach)
        if reach:
            fsync_dir(self.blobs)
        renamed = [_retag(d, retag or {}) for d in incoming]
        names = {d.ref_name for d in renamed if d.ref_name}
        kept = [d for d in self.index() if d.ref_name not in names]
        self.write_index(kept + renamed)
        return added

    def garbage(self) -> list[Path]:
        """Blob files no index entry reaches (BuildKit never deletes old ones)."""
        if not self.blobs.is_dir():
            return []
        live = set(self.reachable())
        return [p for p in self.blobs.iterdir() if f"sha256:{p.name}" not in live]


def misnamed(layout: Layout, descriptors: Iterable[Descriptor], *, rehash: bool) -> list[Descriptor]:
    """Present blobs whose bytes are not what their name says.

    Without *rehash*: by size only (one stat per blob, cheap on any store).
    With it: by sha256 as well, which reads every byte of every blob once
    (a store of G bytes costs about what hashing a bundle of G bytes does).
    """
    bad = []
    for desc in descriptors:
        path = layout.blob_path(desc.digest)
        if not path.is_file():
            continue
        if path.stat().st_size != desc.size or (rehash and sha256_file(path) != desc.hex):
            bad.append(desc)
    return bad


def _children(doc: dict[str, Any]) -> list[Descriptor]:
    out = [Descriptor.from_json(d) for d in doc.get("manifests", [])]
    if "config" in doc:
        out.append(Descriptor.from_json(doc["config"]))
    out += [Descriptor.from_json(d) for d in doc.get("layers", [])]
    out += [Descriptor.from_json(d) for d in doc.get("blobs", [])]
    if "subject" in doc:
        out.append(Descriptor.from_json(doc["subject"]))
    return out


def _retag(desc: Descriptor, retag: dict[str, str]) -> Descriptor:
    for old, new in retag.items():
        if desc.ref_name == old or desc.annotations.get(IMAGE_NAME) == old:
            annotations = {**desc.annotations, REF_NAME: new}
            return Descriptor(desc.media_type, desc.digest, desc.size, annotations, desc.platform)
    return desc


def image_platforms(layout: Layout, desc: Descriptor) -> set[str]:
    """The ``os/arch[/variant]`` an image entry has content for in *layout*.

    For an index, the children whose manifests are present (an index lists
    every platform its registry has; a local engine holds few of them), not
    counting attestation manifests (``unknown/unknown``).
    """
    if desc.media_type in INDEX_TYPES:
        found = set()
        for child in layout.read_json(desc.digest).get("manifests", []):
            plat = child.get("platform") or {}
            if plat.get("architecture") not in (None, "unknown") and layout.blob_path(child["digest"]).is_file():
                found.add(_platform_name(plat))
        return found
    config = layout.read_json(layout.read_json(desc.digest)["config"]["digest"])
    return {_platform_name(config)}


def _platform_name(spec: dict[str, Any]) -> str:
    return "/".join(str(spec[k]) for k in ("os", "architecture", "variant") if spec.get(k))
