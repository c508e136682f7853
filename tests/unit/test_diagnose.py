"""offline.diagnose's checks that need no engine: what it says of the bundle on this machine."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from offline_build import bundle, diagnose
from offline_build.store import Layout
from tests.unit import oci, twopass
from tests.unit.helpers import pack, project


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
    # Cut in a header, the member check names it; cut in a member's bytes, the re-hash does.
    if rows[0].detail.startswith(f"{archive} is damaged or truncated ("):
        assert rows[0].fix == "the copy is damaged or truncated: copy it again", rows
    else:
        assert rows[0].detail.startswith(f"{archive.name} is damaged or truncated ("), rows
        assert rows[0].fix == "copy the bundle again from the online machine"
    assert diagnose.failed(rows)  # so offline.diagnose exits 1


def test_an_intact_bundle_verifies(tmp_path: Path) -> None:
    proj = project(tmp_path)
    pack(proj)
    (row,) = [c for c in diagnose._bundle(proj, deep=True) if c.name == "integrity"]
    assert row.status == "ok" and "files verified" in row.detail


def test_diagnose_judges_the_signature_as_setup_will_and_summarises_the_sbom(tmp_path: Path) -> None:
    from dataclasses import replace

    from offline_build import signing
    from offline_build.model import SigningOptions
    from tests.unit.helpers import packed

    secret, public = signing.keygen(tmp_path / "team.key", None)
    other, other_pub = signing.keygen(tmp_path / "other.key", None)
    proj = project(tmp_path / "p")
    signer = signing.load_signer(secret)
    packed(proj, signer)

    def rows(p) -> dict[str, tuple[str, str]]:  # noqa: ANN001
        return {c.name: (c.status, c.detail) for c in diagnose._bundle(p, deep=False) if c.area == "bundle"}

    name = "build-cache-20261129.tar"
    assert rows(proj)["signature"] == ("info", f"{name}: signature claims key {signer.key_id}, not checked: no "
                                               "trusted key configured (signing.trusted_keys)")
    assert rows(replace(proj, signing=SigningOptions(trusted_keys=(public,))))["signature"] == (
        "ok", f"{name}: signed by trusted key {signer.key_id}")
    status, detail = rows(replace(proj, signing=SigningOptions(trusted_keys=(other_pub,))))["signature"]
    assert status == "fail" and detail.startswith(f"{name} is signed by key {signer.key_id}, which is not trusted")
    assert diagnose.failed([c for c in diagnose._bundle(replace(proj, signing=SigningOptions(trusted_keys=(
        other_pub,))), deep=False)])
    assert rows(proj)["sbom"] == ("info", "sbom.cdx.json: 1 base image, 1 resource (offline.sbom prints it)")
    # A bill of materials that does not match the manifest fails, and the signature row stays (--quick too).
    from tests.unit.helpers import rewrite

    archive = proj.cache_dir / name
    rewrite(archive, tmp_path / "x.tar", lambda m, d: (m, b"{}\n") if m.name == bundle.SBOM else (m, d))
    (tmp_path / "x.tar").replace(archive)
    status, detail = rows(proj)["sbom"]
    assert (status, detail) == ("fail", f"{archive}: sbom.cdx.json does not match the manifest")
    assert rows(proj)["signature"][0] == "info"


def test_diagnose_says_how_far_offline_verify_proved_this_bundle(tmp_path: Path) -> None:
    from offline_build.state import record_proof
    from offline_build.unpacking import load_manifest

    proj = project(tmp_path)
    archive = pack(proj)
    key = load_manifest(archive)[1]

    def proof() -> tuple[str, str]:
        (row,) = [c for c in diagnose._bundle(proj, deep=False) if c.area == "proof"]
        return row.status, row.detail

    assert proof() == ("info", f"{archive.name}: not proven by offline.verify")
    record_proof(proj.cache_dir, key, "cached", True, "2026-11-29 10:00 UTC")
    assert proof() == ("info", f"{archive.name}: builds all cached (2026-11-29 10:00 UTC); edit loop not proven")
    record_proof(proj.cache_dir, key, "edits", False, "2026-11-29 11:00 UTC")
    assert proof() == ("warn", f"{archive.name}: offline.verify --edits failed 2026-11-29 11:00 UTC")
    record_proof(proj.cache_dir, key, "edits", True, "2026-11-29 12:00 UTC")
    assert proof() == ("ok", f"{archive.name}: edit loop proven 2026-11-29 12:00 UTC (offline.verify --edits)")
    # The proof follows the bundle's manifest, not its name: a renamed copy keeps it ...
    size = archive.stat().st_size
    renamed = archive.rename(archive.with_name("build-cache-renamed.tar"))
    assert proof() == ("ok", f"{renamed.name}: edit loop proven 2026-11-29 12:00 UTC (offline.verify --edits)")
    # ... and a re-export with other content, under the old name and the same size, is another bundle.
    renamed.unlink()
    (proj.cache_dir / "resources" / "models" / "m.txt").write_text("weightz\n")
    members = bundle.collect(proj.cache_dir)
    manifest = bundle.Manifest(project=proj.name, version="1", platforms=[], services={"svc": {}},
                               base_images={"debian:bookworm-slim": "base-debian_bookworm-slim"})
    manifest.files = twopass.hash_members(members)
    twopass.write(archive, manifest, members)
    assert archive.stat().st_size == size  # name and size alike: only the manifest tells them apart
    assert load_manifest(archive)[1] != key
    assert proof() == ("info", f"{archive.name}: not proven by offline.verify")
    # A damaged bundle is proven by nothing (the integrity row says why), and diagnose goes on.
    archive.write_bytes(b"not a tar")
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
    from offline_build.state import PROOFS, proofs_of, record_proof
    from offline_build.unpacking import load_manifest

    proj = project(tmp_path)
    archive = pack(proj)
    key = load_manifest(archive)[1]
    (proj.cache_dir / PROOFS).write_text(f'{{"{key}": "yes", "x": {{"edits": 3}}}}')
    (row,) = [c for c in diagnose._bundle(proj, deep=False) if c.area == "proof"]
    assert row.detail == f"{archive.name}: not proven by offline.verify"
    record_proof(proj.cache_dir, key, "edits", True, "2026-11-29 12:00 UTC")
    assert proofs_of(proj.cache_dir)[key]["edits"]["passed"] is True
