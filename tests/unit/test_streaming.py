"""The data path streams: memory flat in layer size, one copy on disk, one read per byte.

Each test compares against the way it was done before (kept here, frozen,
as the reference) or measures what the streaming promises.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from offline_build import bundle

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


# --- the references: the two-pass, in-memory ways, as they were -------------


def old_write(output: Path, manifest: bundle.Manifest, members: list[tuple[str, Path]]) -> None:
    """bundle.write before streaming: tarfile, members copied by addfile."""
    raw = manifest.to_json()
    with tarfile.open(output, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((bundle.MANIFEST, raw),
                           (bundle.MANIFEST_SUM, hashlib.sha256(raw).hexdigest().encode() + b"\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, path in members:
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            with path.open("rb") as fh:
                tar.addfile(info, fh)


def test_tarstream_frames_exactly_as_tarfile_does(tmp_path: Path) -> None:
    """Byte for byte, with a long (PAX) name, an empty member and a block-sized one."""
    files = {"files/resources/" + "deep/" * 30 + "long-name.bin": os.urandom(1000),
             "files/resources/empty": b"", "files/resources/block": b"x" * 512}
    members = []
    for name, data in files.items():
        path = tmp_path / hashlib.sha256(name.encode()).hexdigest()
        path.write_bytes(data)
        members.append((name, path))
    manifest = bundle.Manifest("p", "1", [], {}, {})
    manifest.files = bundle.hash_members(members)
    bundle.write(tmp_path / "new.tar", manifest, members)
    old_write(tmp_path / "old.tar", manifest, members)
    assert (tmp_path / "new.tar").read_bytes() == (tmp_path / "old.tar").read_bytes()
