"""offline.diagnose's checks that need no engine: what it says of the bundle on this machine."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from offline_build import diagnose
from tests.unit.test_bundle import pack, project


@pytest.mark.parametrize("fraction", [0.10, 0.50, 0.99])
def test_a_truncated_bundle_is_a_failed_row_not_a_traceback(tmp_path: Path, fraction: float) -> None:
    proj = project(tmp_path)
    # A large last member, so that even a cut at 99% lands in its bytes, not in the tar's end padding.
    big = proj.cache_dir / "resources" / "zz" / "big.bin"
    big.parent.mkdir(parents=True)
    big.write_bytes(os.urandom(2 << 20))
    archive = pack(proj)
    with tarfile.open(archive) as tar:
        last = tar.getmembers()[-1]
    data = archive.read_bytes()
    cut = int(len(data) * fraction)
    assert cut < last.offset_data + last.size  # the copy really lost bytes of a member
    archive.write_bytes(data[:cut])

    rows = [c for c in diagnose._bundle(proj, deep=True) if c.area == "bundle"]

    assert [(c.name, c.status) for c in rows] == [("integrity", "fail")]
    assert rows[0].detail.startswith(f"{archive.name} is damaged or truncated (")
    assert rows[0].fix == "copy the bundle again from the online machine"
    assert diagnose.failed(rows)  # so offline.diagnose exits 1


def test_an_intact_bundle_verifies(tmp_path: Path) -> None:
    proj = project(tmp_path)
    pack(proj)
    (row,) = [c for c in diagnose._bundle(proj, deep=True) if c.area == "bundle"]
    assert row.status == "ok" and "files verified" in row.detail
