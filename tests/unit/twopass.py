"""The two-pass packer the tool used before packing hashed while writing: hash every file, then write.

Kept for the tests only, as the reference :func:`offline_build.packing.write_hashed`
must equal byte for byte, and to build bundles with hand-made manifests
(a poisoned one, a delta against a chosen base).

A reference that shares code with what it checks mirrors that code's bugs, so
nothing here comes from the writer under test (``tarstream``,
``bundle.manifest_sum``, ``bundle.atomic_output``, ``files.sha256_file``): the
archive is written by :mod:`tarfile`, every digest by :mod:`hashlib`, and the
format is spelled out here as ``bundle.py`` documents it:

* a POSIX.1-2001 (PAX) tar of regular files only, each mode 0644, mtime 0,
  uid/gid 0 and no owner names (an archive depends on its content only);
  data padded to 512-byte blocks, closed by two empty blocks and padded to a
  whole 10240-byte record (what ``tarfile.open(..., "w")`` does);
* ``manifest.json`` first, then ``manifest.json.sha256`` holding the
  manifest's sha256 as 64 lowercase hex digits and a newline, then the
  members in the order given (``oci-layout``, ``index.json``, blobs, files).

Only the manifest's text (``Manifest.to_json``) and the record types are the
tool's own: they are the format's definition, not its writing.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from offline_build.bundle import BundleError, FileEntry, Manifest, Progress

MANIFEST = "manifest.json"  # spelled out, not imported: a renamed member must show as a difference
MANIFEST_SUM = "manifest.json.sha256"
_READ = 1 << 16


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ):
            digest.update(chunk)
    return digest.hexdigest()


def checksum(raw: bytes) -> bytes:
    """What ``manifest.json.sha256`` holds: the manifest's sha256 in lowercase hex, and a newline."""
    return hashlib.sha256(raw).hexdigest().encode("ascii") + b"\n"


def hash_members(members: list[tuple[str, Path]], progress: Progress | None = None) -> list[FileEntry]:
    """Hash every file; a blob whose content does not match its name is refused."""
    entries = []
    for name, path in members:
        digest = sha256_of(path)
        if name.startswith("blobs/sha256/") and digest != name.rsplit("/", 1)[1]:
            raise BundleError(f"{path}: content does not match its digest",
                              "the store is damaged: remove it and export again")
        size = os.stat(path).st_size
        entries.append(FileEntry(name, size, digest))
        if progress:
            progress(size)
    return entries


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = tarfile.REGTYPE
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write(output: Path, manifest: Manifest, members: list[tuple[str, Path]],
          progress: Progress | None = None) -> int:
    """Write the archive, its manifest already complete; a failure leaves *output* as it was, and no partial file."""
    raw = manifest.to_json()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.twopass.partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in ((MANIFEST, raw), (MANIFEST_SUM, checksum(raw))):
                tar.addfile(_info(name, len(data)), io.BytesIO(data))
            for name, path in members:
                size = os.stat(path).st_size
                with open(path, "rb") as fh:
                    tar.addfile(_info(name, size), fh)
                if progress:
                    progress(size)
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
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
