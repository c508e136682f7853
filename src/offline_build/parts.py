"""A bundle in numbered parts: cut for media with a file size limit (FAT32 sticks), read back as one.

``<name>.parts/`` holds ``<name>.tar.001``, ``.002``... and ``parts.json``
with each part's size and sha256, so a missing or damaged part is named
before tarfile reads a byte of it.

:class:`BundleError` lives here, below ``bundle``, so both modules raise the
same error without importing each other; ``bundle`` re-exports it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path

from .errors import OfflineBuildError
from .files import CHUNK, fsync_dir, sha256_file, write_atomic


class BundleError(OfflineBuildError):
    """The bundle is damaged, incomplete, unsafe, or not for this project."""


PARTS = "parts.json"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
MIN_PART = 1 << 20


def parse_size(text: str) -> int:
    """``3900M`` -> bytes (K, M, G are binary units, as split(1) reads them)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text.upper())
    if not m or int(m.group(1)) <= 0:
        raise BundleError(f"--split-size {text!r} is not a size", "give a number with K, M or G, e.g. 3900M")
    size = int(m.group(1)) * _UNITS[m.group(2)]
    if size < MIN_PART:  # a part per few bytes: millions of files, each hashed and listed
        raise BundleError(f"--split-size {text!r} is below 1M", "parts are for media limits: e.g. 3900M for FAT32")
    return size


def split(archive: Path, size: int) -> Path:
    """Cut *archive* into numbered parts in ``<name>.parts/`` with a parts manifest; remove the whole."""
    folder = archive.with_name(archive.name.removesuffix(".tar") + ".parts")
    tmp = folder.with_name(f".{folder.name}.partial")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    parts = []
    whole = hashlib.sha256()
    with archive.open("rb") as src:
        number = 0
        while True:
            number += 1
            name = f"{archive.name}.{number:03d}"
            digest, written = hashlib.sha256(), 0
            with (tmp / name).open("wb") as out:
                while written < size and (chunk := src.read(min(CHUNK, size - written))):
                    out.write(chunk)
                    digest.update(chunk)
                    whole.update(chunk)
                    written += len(chunk)
                os.fsync(out.fileno())
            if not written:
                (tmp / name).unlink()
                break
            parts.append({"name": name, "size": written, "sha256": digest.hexdigest()})
    write_atomic(tmp / PARTS, (json.dumps({"archive": archive.name, "sha256": whole.hexdigest(),
                                           "parts": parts}, indent=2) + "\n").encode())
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    fsync_dir(folder.parent)
    archive.unlink()
    return folder


class _Concat(io.RawIOBase):
    """The parts read back as one seekable file, for tarfile."""

    def __init__(self, paths: list[Path]) -> None:
        self.files = [p.open("rb") for p in paths]
        self.sizes = [p.stat().st_size for p in paths]
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: sum(self.sizes)}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        start = self.pos
        for handle, size in zip(self.files, self.sizes):
            if start < size:
                handle.seek(start)
                data = handle.read(min(len(buffer), size - start))
                buffer[: len(data)] = data
                self.pos += len(data)
                return len(data)
            start -= size
        return 0

    def close(self) -> None:
        for handle in self.files:
            handle.close()
        super().close()


def parts_folder(path: Path) -> Path | None:
    """The parts folder for *path*: the folder itself or the folder of its first part."""
    if path.is_dir() and (path / PARTS).is_file():
        return path
    if path.is_file() and re.search(r"\.\d{3}$", path.name) and (path.parent / PARTS).is_file():
        return path.parent
    return None


def check_parts(folder: Path) -> list[tuple[Path, str]]:
    """Each part the parts manifest lists, with its sha256, after naming an unreadable manifest or a part that is
    missing or of another size. Reads no part: setup runs it before the engine, and the unpack hashes them."""
    try:
        spec = json.loads((folder / PARTS).read_text())
        listed = [(str(p["name"]), int(p["size"]), str(p["sha256"])) for p in spec["parts"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{folder / PARTS}: not a parts manifest ({exc})", "copy the parts folder again") from None
    found = []
    for name, size, digest in listed:
        path = folder / Path(name).name
        if not path.is_file():
            raise BundleError(f"{folder}: part {name} is missing", f"copy {name} into {folder}")
        if path.stat().st_size != size:
            raise _damaged(folder, name)
        found.append((path, digest))
    return found


def open_parts(folder: Path) -> tarfile.TarFile:
    """Check every part against the parts manifest, naming a missing or damaged one, then open."""
    paths = []
    for path, digest in check_parts(folder):
        if sha256_file(path) != digest:
            raise _damaged(folder, path.name)
        paths.append(path)
    return tarfile.open(fileobj=io.BufferedReader(_Concat(paths), CHUNK), mode="r:")  # type: ignore[arg-type]


def _damaged(folder: Path, name: str) -> BundleError:
    return BundleError(f"{folder}: part {name} is damaged (size or checksum mismatch)", f"copy {name} again")
