"""Files as the tool writes and reads them: atomically, durably, hashed in the same pass as the copy.

Every module that writes a file does it through here (the store, bundles, captures, proofs, the state
file), so a crash or Ctrl-C at any point leaves the old content or the new, never half.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from .errors import OfflineBuildError

CHUNK = 1 << 20  # how much a copy or a hash reads at a time


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def create_ignored(folder: Path) -> None:
    """Create *folder* (and its parents) with a ``.gitignore`` of ``*``, unless it exists already.

    The cache folder and the APT captures are the tool's output, megabytes
    to gigabytes that must never be committed; a folder the user made is left as it is.
    Bundles never carry the file: top-level dot files of capture folders are left out.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError:
        return
    write_atomic(folder / ".gitignore", b"*\n")


def fsync_dir(folder: Path) -> None:
    """Make the names in *folder* durable: a rename is only on disk once its folder is synced."""
    fsync_path(folder, os.O_DIRECTORY)


def write_atomic(path: Path, data: bytes) -> None:
    """Write *data* so that *path* holds either the old or the new content, never half.

    The one way the tool writes a file: a temporary file of its own name in
    the same folder (so two writers never share one, and the rename stays on
    one file system), synced, renamed over *path*, and the folder synced, so
    a crash or Ctrl-C at any point leaves the old file or the new one.
    A symlink stays and its target gets the content; a device, pipe or
    socket is refused (a rename would replace it with a plain file).
    """
    refuse_special(path)  # stat follows a link: /dev/stdout into a pipe is refused too
    if path.is_symlink():
        path = path.resolve()  # a dangling link's folders are not made: the write names the missing one
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from the builds that read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def refuse_special(path: Path) -> None:
    """Refuse to write *path* when it is a device, pipe or socket (or a link to one)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # not there (yet): written new
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a folder: the rename fails, named at the boundary
        raise OfflineBuildError(f"{path} is a device, pipe or socket, not a file to write",
                                "give a path to a regular file (the tool writes a whole file, then renames it)")


def copy_hashed(source: Path, target: Path) -> str:
    """Copy *source* to a new file *target*, hashing the bytes as they are written; their sha256.

    One read per byte: the check and the copy are the same pass.
    """
    with source.open("rb") as src:
        return copy_stream_hashed(src, target)


def copy_stream_hashed(source: BinaryIO, target: Path) -> str:
    """:func:`copy_hashed` from an open stream (a pipe, a tar member): written, synced, hashed once."""
    digest = hashlib.sha256()
    with target.open("xb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def fsync_path(path: Path, flags: int = 0) -> None:
    """Make a file's bytes (or, with ``os.O_DIRECTORY``, a folder's names) durable."""
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def display_path(path: Path, root: Path | None = None) -> str:
    """A path as reports, tables and messages show it: relative to *root* (the project; by default the current
    folder) when it is inside it, else as it is."""
    try:
        return str(Path(path).resolve().relative_to((root or Path.cwd()).resolve()))
    except ValueError:
        return str(path)
