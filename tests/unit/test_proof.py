"""The proof file: what offline.verify proved travels beside the bundle, signed, and setup and diagnose judge it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from offline_build import bundle, diagnose, proof, signing, unpacking
from offline_build.model import SigningOptions
from offline_build.proof import Proof, ProofError, ServiceResult
from offline_build.setup import unpack
from tests.unit.helpers import pack, packed, project, snapshot

ENGINE = {"server_version": "27.3.1", "image_store": "containerd", "platforms": "linux/amd64"}
AIRTIGHT = {"measured": True, "result": "air-tight", "detail": "no build step reached the export's hosts"}
EMPTY = {"measured": True, "result": "empty", "detail": "no build cache before the proof"}
SHOWN = "2026-12-04 10:00 UTC on Docker 27.3.1 (containerd image store; linux/amd64)"


def proof_of(sha: str, **changes: object) -> Proof:
    made = Proof(manifest_sha256=sha, level="edits", passed=True, when="2026-12-04T10:00:00Z", engine=ENGINE,
                 airtight=AIRTIGHT, empty=EMPTY,
                 services=(ServiceResult("app", "rebuilt offline", 5, 3, "ran again offline: RUN make"),))
    return replace(made, **changes)  # type: ignore[arg-type]


def test_the_proof_is_named_after_the_bundle_whatever_its_form(tmp_path: Path) -> None:
    assert proof.proof_path(tmp_path / "build-cache-20261204.tar") == tmp_path / "build-cache-20261204.proof.json"
    assert proof.proof_path(tmp_path / "build-cache-20261204-delta.tar") == \
        tmp_path / "build-cache-20261204-delta.proof.json"
    # Split: beside the parts folder, whether the folder or its first part is named.
    parts = tmp_path / "build-cache-20261204.parts"
    parts.mkdir()
    (parts / "parts.json").write_text("{}")
    (parts / "build-cache-20261204.tar.001").write_bytes(b"x")
    assert proof.proof_path(parts) == tmp_path / "build-cache-20261204.proof.json"
    assert proof.proof_path(parts / "build-cache-20261204.tar.001") == tmp_path / "build-cache-20261204.proof.json"


def test_a_signed_proof_is_proven_by_the_trusted_key(tmp_path: Path, keys: dict[str, Path]) -> None:
    signer = signing.load_signer(keys["team"])
    sha = "a" * 64
    path = proof.write_proof(tmp_path / "build-cache-20261204.tar", proof_of(sha), signer)
    assert path == tmp_path / "build-cache-20261204.proof.json"
    data = json.loads(path.read_text())
    assert data["format"] == proof.FORMAT and data["manifest_sha256"] == sha and data["signed_by"] == signer.key_id
    assert list(data) == sorted(data)
    assert data["services"] == [{"service": "app", "status": "rebuilt offline", "steps": 5, "cached": 3,
                                 "detail": "ran again offline: RUN make"}]
    assert (data["airtight"], data["empty"], data["engine"]) == (AIRTIGHT, EMPTY, ENGINE)
    assert path.with_name(path.name + ".minisig").is_file()
    claim = proof.read_proof(path, sha, (keys["team.pub"],))
    assert (claim.state, claim.key_id) == ("proven", signer.key_id)
    assert claim.proof == replace(proof_of(sha), signed_by=signer.key_id, bundle="build-cache-20261204.tar")
    assert claim.proof.full


def test_an_unsigned_proof_only_claims(tmp_path: Path, keys: dict[str, Path]) -> None:
    sha = "a" * 64
    bundle_path = tmp_path / "build-cache-20261204.tar"
    proof.write_proof(bundle_path, proof_of(sha), signing.load_signer(keys["team"]))
    path = proof.write_proof(bundle_path, proof_of(sha), None)  # the old signature signed another proof: gone
    assert not path.with_name(path.name + ".minisig").exists()
    claim = proof.read_proof(path, sha, (keys["team.pub"],))
    assert claim.state == "claims" and claim.key_id == ""
    assert claim.why() == "unsigned"


def test_a_proof_signed_by_an_untrusted_key_claims_and_names_it(tmp_path: Path, keys: dict[str, Path]) -> None:
    other = signing.load_signer(keys["other"])
    sha = "a" * 64
    path = proof.write_proof(tmp_path / "build-cache-20261204.tar", proof_of(sha), other)
    claim = proof.read_proof(path, sha, (keys["team.pub"],))
    assert (claim.state, claim.key_id) == ("claims", other.key_id)
    assert claim.why() == f"signed by key {other.key_id}, not trusted here"
    assert proof.read_proof(path, sha, ()).why() == f"signed by key {other.key_id}, no trusted key configured"


def test_a_proof_edited_after_signing_is_refused_and_named(tmp_path: Path, keys: dict[str, Path]) -> None:
    sha = "a" * 64
    path = proof.write_proof(tmp_path / "build-cache-20261204.tar", proof_of(sha, passed=False),
                             signing.load_signer(keys["team"]))
    path.write_text(path.read_text().replace('"passed": false', '"passed": true'))
    with pytest.raises(ProofError) as raised:
        proof.read_proof(path, sha, (keys["team.pub"],))
    assert raised.value.message.startswith(f"{path}: edited after signing")
    assert raised.value.hint and "offline.verify" in raised.value.hint


def test_a_signed_proof_without_its_signature_is_refused(tmp_path: Path, keys: dict[str, Path]) -> None:
    sha = "a" * 64
    path = proof.write_proof(tmp_path / "build-cache-20261204.tar", proof_of(sha), signing.load_signer(keys["team"]))
    path.with_name(path.name + ".minisig").unlink()
    with pytest.raises(ProofError) as raised:
        proof.read_proof(path, sha, (keys["team.pub"],))
    assert str(path) in raised.value.message and "signature is missing" in raised.value.message


def test_a_proof_of_another_bundle_is_refused_as_borrowed(tmp_path: Path, keys: dict[str, Path]) -> None:
    path = proof.write_proof(tmp_path / "build-cache-20261204.tar", proof_of("b" * 64),
                             signing.load_signer(keys["team"]))
    with pytest.raises(ProofError) as raised:
        proof.read_proof(path, "a" * 64, (keys["team.pub"],))
    assert raised.value.message.startswith(f"{path}: borrowed from another bundle")
    assert raised.value.hint and "offline.verify" in raised.value.hint


@pytest.mark.parametrize("text", ["not json", "[]", '{"format": 1}', '{"format": 99, "manifest_sha256": "x"}'])
def test_a_file_that_is_not_a_proof_is_one_message(tmp_path: Path, text: str) -> None:
    path = tmp_path / "build-cache-20261204.proof.json"
    path.write_text(text)
    with pytest.raises(ProofError) as raised:
        proof.read_proof(path, "a" * 64, ())
    assert raised.value.message.startswith(f"{path}: ") and raised.value.hint
    if '"format": 99' in text:  # a newer tool's proof says so, whatever else it lacks
        assert "newer than this tool reads" in raised.value.message


def test_a_proof_of_exactly_the_size_limit_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    sha = "a" * 64
    path = proof.write_proof(tmp_path / "build-cache-20261204.tar", proof_of(sha), None)
    raw = path.read_bytes()
    path.write_bytes(raw + b" " * (proof.MAX_PROOF - len(raw)))  # JSON with trailing blanks: still the proof
    assert proof.read_proof(path, sha, ()).proof == Proof.from_json(raw, str(path))
    path.write_bytes(raw + b" " * (proof.MAX_PROOF + 1 - len(raw)))
    with pytest.raises(ProofError) as raised:
        proof.read_proof(path, sha, ())
    assert raised.value.message == (f"{path}: more than {proof.MAX_PROOF} bytes, "
                                    "not an offline.verify proof or its signature")


@pytest.mark.parametrize(("airtight", "empty", "full"), [
    (AIRTIGHT, EMPTY, True),
    ({"measured": False, "result": "not measured", "detail": "--allow-network"}, EMPTY, False),
    (AIRTIGHT, {"measured": True, "result": "not empty", "detail": "12 cache records"}, False),
])
def test_a_full_proof_is_passed_air_tight_and_empty(airtight: dict[str, object], empty: dict[str, object],
                                                     full: bool) -> None:
    assert proof_of("a" * 64, airtight=airtight, empty=empty).full is full
    assert proof_of("a" * 64, airtight=airtight, empty=empty, passed=False).full is False


def test_record_keeps_this_machines_record_and_writes_the_proof_beside_the_bundle(
        tmp_path: Path, keys: dict[str, Path]) -> None:
    from offline_build.state import proofs_of

    proj = project(tmp_path)
    archive = pack(proj)
    sha = unpacking.load_manifest(archive)[1]
    outcomes = [ServiceResult("svc", "all cached", 2, 2, "every step CACHED")]
    path = proof.record(proj, archive, sha, "edits", True, ENGINE, AIRTIGHT, EMPTY, outcomes,
                        signing.load_signer(keys["team"]))
    assert path == proof.proof_path(archive)
    assert proof.read_proof(path, sha, (keys["team.pub"],)).state == "proven"
    entry = proofs_of(proj.cache_dir)[sha]["edits"]
    assert entry["passed"] is True and entry["airtight"] == "air-tight" and entry["empty"] == "empty"


# --- diagnose ------------------------------------------------------------------


def _row(proj) -> tuple[str, str, str]:  # noqa: ANN001
    (row,) = [c for c in diagnose._bundle(proj, deep=False) if c.area == "proof"]
    return row.status, row.detail, row.fix


def _site(tmp_path: Path, keys: dict[str, Path], signer_name: str | None, **changes: object):  # noqa: ANN202
    """A site's project with a bundle and the proof carried beside it (no record of its own)."""
    proj = replace(project(tmp_path / "site"), signing=SigningOptions(trusted_keys=(keys["team.pub"],)))
    archive = pack(proj)
    sha = unpacking.load_manifest(archive)[1]
    signer = signing.load_signer(keys[signer_name]) if signer_name else None
    proof.write_proof(archive, proof_of(sha, **changes), signer)
    return proj, archive


def test_diagnose_at_the_site_shows_a_trusted_full_proof_ok(tmp_path: Path, keys: dict[str, Path]) -> None:
    proj, archive = _site(tmp_path, keys, "team")
    status, detail, _ = _row(proj)
    key = signing.load_signer(keys["team"]).key_id
    assert (status, detail) == ("ok", f"{archive.name}: edit loop proven {SHOWN} (signed by trusted key {key})")


def test_diagnose_at_the_site_reads_the_proof_setup_kept(tmp_path: Path, keys: dict[str, Path]) -> None:
    proj, archive = _site(tmp_path, keys, "team")
    sha = unpacking.load_manifest(archive)[1]
    kept = proof.keep(proj.cache_dir, proof.read_proof(proof.proof_path(archive), sha, (keys["team.pub"],)))
    assert kept == proj.cache_dir / "proofs" / f"{sha}.proof.json"
    proof.proof_path(archive).unlink()  # the copy beside the bundle is gone; setup kept its own
    assert _row(proj)[0] == "ok"


def test_diagnose_at_the_site_says_an_unsigned_proof_only_claims(tmp_path: Path, keys: dict[str, Path]) -> None:
    proj, archive = _site(tmp_path, keys, None)
    status, detail, fix = _row(proj)
    assert (status, detail) == ("info", f"{archive.name}: claims edit loop proven {SHOWN} (unsigned)")
    assert "--sign" in fix


def test_diagnose_at_the_site_names_an_untrusted_signer(tmp_path: Path, keys: dict[str, Path]) -> None:
    proj, archive = _site(tmp_path, keys, "other")
    key = signing.load_signer(keys["other"]).key_id
    assert _row(proj)[:2] == ("info", f"{archive.name}: claims edit loop proven {SHOWN} "
                                      f"(signed by key {key}, not trusted here)")


def test_diagnose_at_the_site_warns_of_a_failed_proof(tmp_path: Path, keys: dict[str, Path]) -> None:
    failed = (ServiceResult("app", "failed", 0, 0, "RUN curl: could not resolve host"),)
    proj, archive = _site(tmp_path, keys, "team", passed=False, services=failed)
    status, detail, fix = _row(proj)
    assert (status, detail) == ("warn", f"{archive.name}: offline.verify --edits failed {SHOWN} (app)")
    assert fix


def test_diagnose_at_the_site_warns_of_a_proof_that_was_not_air_tight(tmp_path: Path, keys: dict[str, Path]) -> None:
    leaky = {"measured": True, "result": "leaky", "detail": "a build step reached mirror.example.invalid"}
    proj, archive = _site(tmp_path, keys, "team", airtight=leaky)
    status, detail, _ = _row(proj)
    assert status == "warn"
    assert detail == (f"{archive.name}: offline.verify --edits passed {SHOWN}, but the engine was not air-tight "
                      "(leaky: a build step reached mirror.example.invalid)")


def test_diagnose_at_the_site_warns_of_a_borrowed_proof(tmp_path: Path, keys: dict[str, Path]) -> None:
    proj, archive = _site(tmp_path, keys, "team", manifest_sha256="b" * 64)
    status, detail, fix = _row(proj)
    assert status == "warn" and detail.startswith(f"{proof.proof_path(archive)}: borrowed from another bundle")
    assert fix


def test_diagnose_on_the_online_machine_shows_its_own_record(tmp_path: Path, keys: dict[str, Path]) -> None:
    proj = project(tmp_path)
    archive = pack(proj)
    sha = unpacking.load_manifest(archive)[1]
    proof.record(proj, archive, sha, "edits", True, ENGINE, AIRTIGHT, EMPTY, [], None)
    status, detail, _ = _row(proj)
    assert status == "ok" and detail.startswith(f"{archive.name}: edit loop proven ")
    # A record of a proof that was not air-tight is no full proof, here either.
    proof.record(proj, archive, sha, "edits", True, ENGINE, {"result": "leaky"}, EMPTY, [], None)
    assert _row(proj)[0] == "warn"


def test_a_plain_verify_on_an_engine_that_was_not_air_tight_is_not_shown_as_a_pass(
        tmp_path: Path, keys: dict[str, Path]) -> None:
    proj = project(tmp_path)
    archive = pack(proj)
    sha = unpacking.load_manifest(archive)[1]
    proof.record(proj, archive, sha, "cached", True, ENGINE, {"result": "reached"}, EMPTY, [], None)
    status, detail, _ = _row(proj)
    assert status == "warn" and "not air-tight and empty" in detail and "builds all cached" not in detail
    proof.record(proj, archive, sha, "cached", True, ENGINE, AIRTIGHT, EMPTY, [], None)
    assert _row(proj)[1].startswith(f"{archive.name}: builds all cached")


# --- setup ---------------------------------------------------------------------


def test_setup_keeps_the_proof_carried_with_the_bundle(tmp_path: Path, keys: dict[str, Path]) -> None:
    signer = signing.load_signer(keys["team"])
    archive = packed(project(tmp_path / "online"), signer)
    sha = unpacking.load_manifest(archive)[1]
    written = proof.write_proof(archive, proof_of(sha), signer)
    site = replace(project(tmp_path / "site"), signing=SigningOptions(trusted_keys=(keys["team.pub"],)))
    done = unpack(site, archive, Console(quiet=True), keep_proof=True)
    assert done.proof is not None and done.proof.state == "proven"
    kept = site.cache_dir / "proofs" / f"{sha}.proof.json"
    assert kept.read_bytes() == written.read_bytes()
    assert kept.with_name(kept.name + ".minisig").read_bytes() == \
        written.with_name(written.name + ".minisig").read_bytes()


def test_setup_keeps_the_proof_of_split_parts(tmp_path: Path, keys: dict[str, Path]) -> None:
    archive = packed(project(tmp_path / "online"), None)
    sha = unpacking.load_manifest(archive)[1]
    folder = bundle.split(archive, 4096)
    written = proof.write_proof(folder, proof_of(sha), None)
    assert written == folder.with_name("build-cache-20261129.proof.json")  # as the user sees it beside the parts
    site = project(tmp_path / "site")
    done = unpack(site, folder, Console(quiet=True), keep_proof=True)
    assert done.proof is not None and done.proof.state == "claims"
    assert (site.cache_dir / "proofs" / f"{sha}.proof.json").is_file()


@pytest.mark.parametrize("how", ["borrowed", "edited"])
def test_setup_refuses_a_borrowed_or_edited_proof_and_changes_nothing(tmp_path: Path, keys: dict[str, Path],
                                                                       how: str) -> None:
    signer = signing.load_signer(keys["team"])
    archive = packed(project(tmp_path / "online"), signer)
    sha = unpacking.load_manifest(archive)[1]
    written = proof.write_proof(archive, proof_of("b" * 64 if how == "borrowed" else sha), signer)
    if how == "edited":
        written.write_text(written.read_text().replace("27.3.1", "28.0.0"))
    site = replace(project(tmp_path / "site"), signing=SigningOptions(trusted_keys=(keys["team.pub"],)))
    before = snapshot(site.cache_dir)
    with pytest.raises(ProofError) as raised:
        unpack(site, archive, Console(quiet=True), keep_proof=True)
    words = "borrowed from another bundle" if how == "borrowed" else "edited after signing"
    assert raised.value.message.startswith(f"{written}: {words}")
    assert snapshot(site.cache_dir) == before


def test_verifys_scratch_setup_ignores_a_proof_beside_the_bundle(tmp_path: Path) -> None:
    archive = packed(project(tmp_path / "online"), None)
    proof.write_proof(archive, proof_of("b" * 64), None)  # a stale proof: verify is about to write the new one
    site = project(tmp_path / "scratch")
    assert unpack(site, archive, Console(quiet=True)).proof is None
    assert not (site.cache_dir / "proofs").exists()


def test_setup_step_keeps_proofs_and_its_plan_says_so(tmp_path: Path) -> None:
    from offline_build.setup import unpack_step

    step = unpack_step(project(tmp_path), tmp_path / "build-cache-20261204.tar")
    assert step.keep_proof
    assert "build-cache-20261204.proof.json" in step.describe()

