"""The two-pass packer the tool used before packing hashed while writing: hash every file, then write.

Kept for the tests only, as the reference :func:`offline_build.packing.write_hashed`
must equal byte for byte, and to build bundles with hand-made manifests
(a poisoned one, a delta against a chosen base).
"""

from __future__ import annotations

from pathlib import Path

from offline_build import tarstream
from offline_build.bundle import (
    MANIFEST,
    MANIFEST_SUM,
    BundleError,
    FileEntry,
    Manifest,
    Progress,
    atomic_output,
    manifest_sum,
)
from offline_build.store import sha256_file


def hash_members(members: list[tuple[str, Path]], progress: Progress | None = None) -> list[FileEntry]:
    """Hash every file; a blob whose content does not match its name is refused."""
    entries = []
    for name, path in members:
        digest = sha256_file(path)
        if name.startswith("blobs/sha256/") and digest != name.rsplit("/", 1)[1]:
            raise BundleError(f"{path}: content does not match its digest",
                              "the store is damaged: remove it and export again")
        size = path.stat().st_size
        entries.append(FileEntry(name, size, digest))
        if progress:
            progress(size)
    return entries


def write(output: Path, manifest: Manifest, members: list[tuple[str, Path]],
          progress: Progress | None = None) -> int:
    """Write the archive atomically, its manifest already complete."""
    raw = manifest.to_json()
    with atomic_output(output) as fh:
        for name, content in [(MANIFEST, raw), (MANIFEST_SUM, manifest_sum(raw)), *members]:
            for chunk in tarstream.member_chunks(name, content):
                fh.write(chunk)
            if progress and isinstance(content, Path):
                progress(content.stat().st_size)
        fh.write(tarstream.end(fh.tell()))
    return output.stat().st_size


def delta_members(members: list[tuple[str, Path]], entries: list[FileEntry],
                  base: Manifest) -> list[tuple[str, Path]]:
    """Only what *base* lacks: a file is the same when its path and sha256 are."""
    have = {(f.path, f.sha256) for f in base.files}
    digest = {e.path: e.sha256 for e in entries}
    always = {"oci-layout", "index.json"}  # small, and the local index may hold more entries
    return [(name, path) for name, path in members if name in always or (name, digest[name]) not in have]


def unique_members(members: list[tuple[str, Path]], entries: list[FileEntry]) -> list[tuple[str, Path]]:
    """Each content once: a later file with the same sha256 as an earlier one is left out.

    Captures repeat themselves (two services' pip steps share most wheels);
    setup copies the one packed file to every path the manifest lists for it.
    """
    digest = {e.path: e.sha256 for e in entries}
    seen: set[str] = set()
    out = []
    for name, path in members:
        key = digest.get(name, name)
        if key in seen:
            continue
        seen.add(key)
        out.append((name, path))
    return out
