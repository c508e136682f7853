"""Tar archives as a stream of chunks: no member is ever held whole in memory.

``tarfile`` copies a member in one call, so a writer that must hand bytes on
as they come (``docker load`` reading a generator, a bundle hashed while it
is written) frames the archive itself. The framing is ``tarfile``'s own:
each header is ``TarInfo.tobuf`` (PAX, as ``tarfile`` writes by default),
data is padded to whole blocks, and the end is two empty blocks padded to a
whole record, so the bytes are the ones ``tarfile.open(..., "w")`` writes
for the same members.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OfflineBuildError
from .files import CHUNK

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE

# One member: its name in the archive, and its bytes or the file holding them.
Member = tuple[str, "bytes | Path"]


def header(name: str, size: int) -> bytes:
    """A regular file's header: mode 0644, time 0, no owner, so an archive depends on content only."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def padding(size: int) -> bytes:
    return tarfile.NUL * (-size % BLOCK)


def end(offset: int) -> bytes:
    """What closes an archive of *offset* bytes: two empty blocks, then up to a whole record."""
    total = offset + 2 * BLOCK
    return tarfile.NUL * (2 * BLOCK + (-total % RECORD))


def file_chunks(path: Path, size: int, digest: hashlib._Hash | None = None) -> Iterator[bytes]:
    """*path*'s bytes, CHUNK at a time, fed to *digest* as they are read.

    *size* was written in the header before the first byte: a file that
    grew or shrank since would make a corrupt archive, so it is refused.
    """
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            done += len(chunk)
            if done > size:
                break
            if digest is not None:
                digest.update(chunk)
            yield chunk
    if done != size:
        raise OfflineBuildError(f"{path} changed size while it was being archived ({size} bytes expected)",
                                "nothing else may write the cache folder during an export: run it again")


def member_chunks(name: str, content: bytes | Path, digest: hashlib._Hash | None = None) -> Iterator[bytes]:
    """One whole member: header, data (streamed from a file), padding."""
    if isinstance(content, bytes):
        if digest is not None:
            digest.update(content)
        yield header(name, len(content)) + content + padding(len(content))
        return
    size = content.stat().st_size
    yield header(name, size)
    yield from file_chunks(content, size, digest)
    yield padding(size)


def stream(members: Iterable[Member]) -> Iterator[bytes]:
    """A whole archive of *members*, in order; memory stays at one CHUNK whatever the sizes."""
    offset = 0
    for name, content in members:
        for chunk in member_chunks(name, content):
            offset += len(chunk)
            yield chunk
    yield end(offset)
