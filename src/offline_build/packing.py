"""Packing in one pass: every byte of the bundle read once, hashed while it is written.

The manifest, first in the archive, lists the sha256 of every file, and
each is known only once its bytes went by. A sha256 is always 64 hex
digits and sizes are known from the start, so the manifest is as long with
stand-in digests as with the real ones: it is written with stand-ins, the
members after it are hashed as they are written, and the manifest and its
checksum are written over the stand-ins at the end, same length, same
place. The archive is byte for byte what hashing first and writing after
produced (the old two-pass packer, kept as the tests' reference in
``tests/unit/twopass.py``), and each file is read once.

What is left out (a delta's base already has it; a copy of a file packed
earlier) must be known before it is written. A blob's sha256 is its name,
so it is never read for that. A file can only be left out if an earlier
packed file has its size or the base has a file of its path and size:
only such a file is hashed before it is written (one read if it is left
out, two in the rare case it is not).

After the files come the SBOM (made from their digests, so it reads
nothing again; the manifest's "sbom" holds its sha256, a stand-in of the
same length until then) and, for a signed bundle, the signature over the
final manifest: both known only at the end, and both small.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import tarstream
from .bundle import (
    MANIFEST,
    MANIFEST_SUM,
    SBOM,
    SIGNATURE,
    BundleError,
    FileEntry,
    Manifest,
    Progress,
    atomic_output,
    manifest_sum,
)
from .files import sha256_file
from .signing import Signer

_STAND_IN = "0" * 64
_ALWAYS = ("oci-layout", "index.json")  # a delta carries them whatever its base held


@dataclass(frozen=True)
class Packed:
    """What :func:`write_hashed` wrote: every file's entry, the members packed, the archive's bytes."""

    entries: list[FileEntry]
    members: list[tuple[str, Path]]
    size: int
    manifest: bytes = b""  # the manifest as packed (what a signature signs)
    signature: bytes | None = None


def write_hashed(output: Path, manifest: Manifest, members: list[tuple[str, Path]],
                 base: Manifest | None = None, progress: Progress | None = None, *,
                 sbom: Callable[[Manifest], bytes] | None = None,
                 signer: Signer | None = None) -> Packed:
    """Write the bundle of *members* (without what *base* holds), hashing each file as it goes in.

    Sets ``manifest.files`` (and ``manifest.sbom``, ``manifest.signed_by``).
    *sbom* makes the bill of materials from the manifest with every digest
    known; *signer* signs the final manifest's bytes, which name its key
    (so a bundle stripped of its signature says it lost one). A blob whose
    bytes do not hash to its name is refused and no bundle is left behind.
    """
    sizes = {name: path.stat().st_size for name, path in members}
    known = {name: _blob_hex(name) for name, _ in members}
    manifest.files = [FileEntry(name, sizes[name], known[name] or _STAND_IN) for name, _ in members]
    manifest.sbom = _STAND_IN if sbom else ""
    manifest.signed_by = signer.key_id if signer else ""
    draft = manifest.to_json()
    plan = _Plan(base)
    with atomic_output(output) as fh:
        fh.write(tarstream.header(MANIFEST, len(draft)))
        manifest_at = fh.tell()
        fh.write(draft + tarstream.padding(len(draft)))
        summed = tarstream.header(MANIFEST_SUM, 65)
        fh.write(summed)
        sum_at = fh.tell()
        fh.write(b"0" * 65 + tarstream.padding(65))
        digests = {}
        for name, path in members:
            digests[name] = _pack_one(fh, name, path, sizes[name], known[name], plan)
            if progress:
                progress(sizes[name])
        manifest.files = [FileEntry(name, sizes[name], digests[name]) for name, _ in members]
        if sbom:
            manifest.sbom = _write_bytes(fh, SBOM, sbom(manifest))
        raw = manifest.to_json()
        assert len(raw) == len(draft), "a manifest's length depends on sizes and paths only"
        signature = signer.sign(raw, signed_comment(manifest)) if signer else None
        if signature is not None:
            _write_bytes(fh, SIGNATURE, signature)
        fh.write(tarstream.end(fh.tell()))
        fh.seek(manifest_at)
        fh.write(raw)
        fh.seek(sum_at)
        fh.write(manifest_sum(raw))
    return Packed(manifest.files, plan.packed, output.stat().st_size, raw, signature)


def signed_comment(manifest: Manifest) -> str:
    """minisign's trusted comment (signed too, shown by ``minisign -V``): which bundle this is."""
    return f"offline-build bundle of {manifest.project} {manifest.version}, created {manifest.created}"


def _write_bytes(fh: BinaryIO, name: str, data: bytes) -> str:
    """One member from memory (the SBOM, the signature: small); its sha256."""
    fh.write(tarstream.header(name, len(data)))
    fh.write(data + tarstream.padding(len(data)))
    return hashlib.sha256(data).hexdigest()


class _Plan:
    """Which members go in: not one *base* holds under its path, not a second copy of packed bytes."""

    def __init__(self, base: Manifest | None) -> None:
        self.base = {(f.path, f.sha256) for f in base.files} if base else set()
        self.base_sizes = {(f.path, f.size) for f in base.files} if base else set()
        self.sizes: set[int] = set()
        self.digests: set[str] = set()
        self.packed: list[tuple[str, Path]] = []

    def may_skip(self, name: str, size: int) -> bool:
        return size in self.sizes or (name not in _ALWAYS and (name, size) in self.base_sizes)

    def skips(self, name: str, sha: str) -> bool:
        return sha in self.digests or (name not in _ALWAYS and (name, sha) in self.base)

    def add(self, name: str, path: Path, size: int, sha: str) -> None:
        self.sizes.add(size)
        self.digests.add(sha)
        self.packed.append((name, path))


def _pack_one(fh: BinaryIO, name: str, path: Path, size: int, known: str | None, plan: _Plan) -> str:
    """Write one member unless the plan leaves it out; its sha256."""
    sha = known or (sha256_file(path) if plan.may_skip(name, size) else None)
    if sha is not None and plan.skips(name, sha):
        return sha
    digest = hashlib.sha256()
    fh.write(tarstream.header(name, size))
    for chunk in tarstream.file_chunks(path, size, digest):
        fh.write(chunk)
    fh.write(tarstream.padding(size))
    actual = digest.hexdigest()
    if sha is not None and actual != sha:
        # A blob's name is the sha256 of its bytes (or the file changed since it was hashed).
        raise BundleError(f"{path}: content does not match its digest",
                          "the store is damaged: remove it and export again")
    plan.add(name, path, size, actual)
    return actual


def _blob_hex(name: str) -> str | None:
    return name.rsplit("/", 1)[1] if name.startswith("blobs/sha256/") else None
