"""offline.diagnose's checks that need no engine: what it says of the bundle on this machine."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from offline_build import diagnose
from offline_build.store import Layout
from tests.unit import oci
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


def test_diagnose_says_how_far_offline_verify_proved_this_bundle(tmp_path: Path) -> None:
    from offline_build.state import record_proof

    proj = project(tmp_path)
    archive = pack(proj)

    def proof() -> tuple[str, str]:
        (row,) = [c for c in diagnose._bundle(proj, deep=False) if c.area == "proof"]
        return row.status, row.detail

    assert proof() == ("info", f"{archive.name}: not proven by offline.verify")
    record_proof(proj.cache_dir, archive, "cached", True, "2026-11-29 10:00 UTC")
    assert proof() == ("info", f"{archive.name}: builds all cached (2026-11-29 10:00 UTC); edit loop not proven")
    record_proof(proj.cache_dir, archive, "edits", False, "2026-11-29 11:00 UTC")
    assert proof() == ("warn", f"{archive.name}: offline.verify --edits failed 2026-11-29 11:00 UTC")
    record_proof(proj.cache_dir, archive, "edits", True, "2026-11-29 12:00 UTC")
    assert proof() == ("ok", f"{archive.name}: edit loop proven 2026-11-29 12:00 UTC (offline.verify --edits)")
    # Another bundle (a re-export changes the size) is not proven by this one's record.
    archive.write_bytes(archive.read_bytes() + b"\0" * 512)
    assert proof()[0] == "info"


@pytest.mark.parametrize("deep", [True, False])
def test_a_store_blob_that_does_not_hash_to_its_name_is_named(tmp_path: Path, deep: bool) -> None:
    proj = project(tmp_path)
    store = oci.new(proj.store)
    oci.image(store, "cache-svc", [b"svc layer"])
    (ok,) = diagnose._store(proj, deep)
    assert ok.status == "ok"
    victim = next(p for p in store.blobs.iterdir() if p.read_bytes() == b"svc layer")
    # Deep: the same size, only the hash tells; quick: a cut-short blob, told by its size.
    victim.write_bytes(b"bad layer" if deep else b"bad")
    (row,) = diagnose._store(proj, deep)
    assert row.status == "fail"
    assert row.detail == f"1 blob(s) do not hash to their name: sha256:{victim.name}"
    assert "offline.setup" in row.fix
    assert Layout(proj.store).exists()


def test_a_proofs_file_of_the_wrong_shape_claims_nothing_and_is_rewritten(tmp_path: Path) -> None:
    from offline_build.state import PROOFS, bundle_key, proofs_of, record_proof

    proj = project(tmp_path)
    archive = pack(proj)
    (proj.cache_dir / PROOFS).write_text(f'{{"{bundle_key(archive)}": "yes", "x": {{"edits": 3}}}}')
    (row,) = [c for c in diagnose._bundle(proj, deep=False) if c.area == "proof"]
    assert row.detail == f"{archive.name}: not proven by offline.verify"
    record_proof(proj.cache_dir, archive, "edits", True, "2026-11-29 12:00 UTC")
    assert proofs_of(proj.cache_dir)[bundle_key(archive)]["edits"]["passed"] is True
