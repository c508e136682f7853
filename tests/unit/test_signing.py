"""Signed bundles: keys, the signature inside the bundle, and setup's refusals (no engine needed)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from offline_build import bundle, packing, sbom, signing, unpacking
from offline_build.model import SigningOptions
from offline_build.setup import unpack
from tests.unit.helpers import packed, project, rewrite, snapshot


def trusting(proj, *keys: Path):  # noqa: ANN001, ANN201
    return replace(proj, signing=SigningOptions(trusted_keys=keys))


def test_keygen_writes_a_private_secret_key_and_its_public_half_and_never_overwrites(tmp_path: Path) -> None:
    secret, public = signing.keygen(tmp_path / "team.key", None)
    assert public == tmp_path / "team.pub"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    key_id = signing.key_id(signing.load_trusted((public,))[0])
    # The public key file names the id as minisign itself prints it.
    assert public.read_text().splitlines()[0] == f"untrusted comment: minisign public key {key_id}"
    assert signing.load_signer(secret).key_id == key_id
    before = (secret.read_bytes(), public.read_bytes())
    with pytest.raises(signing.SigningError, match="team.key already exists"):
        signing.keygen(secret, None)
    public.unlink()
    with pytest.raises(signing.SigningError, match="team.key already exists"):
        signing.keygen(secret, None)
    assert secret.read_bytes() == before[0] and not public.exists()


@pytest.mark.parametrize(("given", "refusal"), [("", ". is a folder, not a key file"),
                                                ("/", "/ is a folder, not a key file"),
                                                ("folder", "folder is a folder, not a key file"),
                                                ("team.pub", "team.pub: a secret key named .pub would be taken for a "
                                                             "public one")])
def test_keygen_refuses_a_folder_or_a_pub_name_and_writes_nothing(tmp_path: Path, given: str, refusal: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``--key .`` raised ValueError from pathlib; ``--key team.pub`` wrote the secret key as team.pub."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    with pytest.raises(signing.SigningError) as info:
        signing.keygen(Path(given), None)
    assert info.value.message == refusal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_an_encrypted_key_needs_its_password_and_says_how_to_give_it(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    secret, _ = signing.keygen(tmp_path / "enc.key", "correct horse")
    assert b"encrypted" in secret.read_bytes().splitlines()[0]
    assert signing.load_signer(secret, "correct horse").key_id
    with pytest.raises(signing.SigningError) as wrong:
        signing.load_signer(secret, "battery staple")
    assert str(wrong.value) == (f"wrong password for {secret}\n"
                                f"  fix: set {signing.PASSWORD_ENV} to the key's password")
    monkeypatch.setenv(signing.PASSWORD_ENV, "correct horse")
    assert signing.load_signer(secret).key_id
    monkeypatch.delenv(signing.PASSWORD_ENV)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal: CI, a pipe
    with pytest.raises(signing.SigningError) as no_terminal:
        signing.load_signer(secret)
    assert str(no_terminal.value) == (f"{secret} needs a password and there is no terminal to ask it on\n"
                                      f"  fix: set {signing.PASSWORD_ENV} to the password")
    monkeypatch.setenv(signing.PASSWORD_ENV, "")  # empty counts as unset, for keygen and export alike
    with pytest.raises(signing.SigningError, match="no terminal"):
        signing.load_signer(secret)


def test_a_key_readable_by_others_is_warned_about(keys: dict[str, Path]) -> None:
    assert signing.loose_permissions(keys["team"]) is None
    keys["team"].chmod(0o644)
    assert signing.loose_permissions(keys["team"]) == (
        f"{keys['team']} is readable by others (mode 0644): run chmod 600 {keys['team']}")


@pytest.mark.parametrize("path", ["missing.key", "not-a-key"])
def test_a_missing_or_wrong_secret_key_is_one_message(tmp_path: Path, path: str) -> None:
    (tmp_path / "not-a-key").write_text("hello\n")
    with pytest.raises(signing.SigningError) as raised:
        signing.load_signer(tmp_path / path)
    assert str(raised.value).startswith(f"{'signing key ' if path == 'missing.key' else ''}{tmp_path / path}")
    assert raised.value.hint


def test_signed_round_trip_sets_up_and_says_which_key(tmp_path: Path, keys: dict[str, Path]) -> None:
    signer = signing.load_signer(keys["team"])
    archive = packed(project(tmp_path / "online"), signer)
    offline = trusting(project(tmp_path / "offline"), keys["team.pub"])
    done = unpack(offline, archive, Console(quiet=True))
    assert done.signature == signing.Verdict("signed", signer.key_id, "offline-build bundle of demo 1, created 2026-11-29T12:00:00Z")
    assert done.signature.describe() == f"signed by trusted key {signer.key_id}"
    assert done.manifest_sha256 == unpacking.load_manifest(archive)[1]  # the key offline.verify records proofs under
    record = json.loads((offline.cache_dir / "bundle.json").read_text())
    assert record["signature"] == f"signed by trusted key {signer.key_id}"
    with tarfile.open(archive) as tar:
        assert (offline.cache_dir / bundle.SBOM).read_bytes() == tar.extractfile(bundle.SBOM).read()  # type: ignore[union-attr]


def test_without_a_trusted_key_a_bundle_is_taken_and_its_state_said(tmp_path: Path, keys: dict[str, Path]) -> None:
    signer = signing.load_signer(keys["team"])
    unsigned = packed(project(tmp_path / "a"), None)
    signed = packed(project(tmp_path / "b"), signer)
    assert unpack(project(tmp_path / "c"), unsigned, Console(quiet=True)).signature.state == "unsigned"
    verdict = unpack(project(tmp_path / "d"), signed, Console(quiet=True)).signature
    assert (verdict.state, verdict.key_id) == ("unchecked", signer.key_id)
    assert verdict.describe() == (f"signature claims key {signer.key_id}, not checked: no trusted key configured "
                                  "(signing.trusted_keys)")


def _refused(offline, archive: Path, message: str) -> None:  # noqa: ANN001
    before = snapshot(offline.cache_dir)
    with pytest.raises(signing.SigningError) as raised:
        unpack(offline, archive, Console(quiet=True))
    assert raised.value.message == message.format(w=archive)
    assert raised.value.hint
    assert snapshot(offline.cache_dir) == before  # the store, the captures, bundle.json: as they were


def test_an_unsigned_bundle_is_refused_where_a_key_is_trusted(tmp_path: Path, keys: dict[str, Path]) -> None:
    archive = packed(project(tmp_path / "online"), None)
    offline = trusting(project(tmp_path / "offline"), keys["team.pub"])
    _refused(offline, archive, "{w} is not signed, and this project trusts only signed bundles")


def test_a_bundle_signed_by_another_key_is_refused(tmp_path: Path, keys: dict[str, Path]) -> None:
    other = signing.load_signer(keys["other"])
    team = signing.key_id(signing.load_trusted((keys["team.pub"],))[0])
    archive = packed(project(tmp_path / "online"), other)
    offline = trusting(project(tmp_path / "offline"), keys["team.pub"])
    _refused(offline, archive, f"{{w}} is signed by key {other.key_id}, which is not trusted here (trusted: {team})")


def test_a_manifest_changed_after_signing_is_refused_even_with_its_checksum_redone(
        tmp_path: Path, keys: dict[str, Path]) -> None:
    """What a checksum cannot catch: the manifest and its sha256 rewritten together. The signature does."""
    signer = signing.load_signer(keys["team"])
    archive = packed(project(tmp_path / "online"), signer)
    edited = tmp_path / "build-cache-20261130.tar"

    def change(member, data):  # noqa: ANN001, ANN202
        if member.name == bundle.MANIFEST:
            doc = json.loads(data)
            doc["version"] = "2"
            data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
            change.manifest = data
        if member.name == bundle.MANIFEST_SUM:
            data = bundle.manifest_sum(change.manifest)
        return member, data

    rewrite(archive, edited, change)
    offline = trusting(project(tmp_path / "offline"), keys["team.pub"])
    _refused(offline, edited, f"{{w}}: its signature (key {signer.key_id}) does not match its manifest")
    # Without a trusted key the same bundle is taken: its checksums agree. That is what signing adds.
    assert unpack(project(tmp_path / "open"), edited, Console(quiet=True)).signature.state == "unchecked"


def test_a_trusted_key_that_cannot_be_read_fails_before_the_bundle_is_opened(tmp_path: Path) -> None:
    archive = packed(project(tmp_path / "online"), None)
    offline = trusting(project(tmp_path / "offline"), tmp_path / "nowhere.pub")
    before = snapshot(offline.cache_dir)
    with pytest.raises(signing.SigningError, match="trusted key .*nowhere.pub does not exist"):
        unpack(offline, archive, Console(quiet=True))
    assert snapshot(offline.cache_dir) == before


def test_the_secret_key_never_enters_the_bundle(tmp_path: Path, keys: dict[str, Path]) -> None:
    signer = signing.load_signer(keys["team"])
    archive = packed(project(tmp_path / "online"), signer)
    data = archive.read_bytes()
    encoded = keys["team"].read_text().splitlines()[1]
    # minisign's secret key: algorithms and KDF (54 bytes), key id (8), Ed25519 seed (32), public key, checksum.
    seed = base64.b64decode(encoded)[62:94]
    assert signing.load_signer(keys["team"]).key.sign(b"x", trusted_comment="t")  # the layout is the real one
    assert encoded.encode() not in data and seed not in data
    assert keys["team"].name.encode() not in data
    assert "key=" not in repr(signer) and encoded not in repr(signer)


def test_the_signature_is_the_last_member_and_signs_the_manifest_as_packed(tmp_path: Path,
                                                                         keys: dict[str, Path]) -> None:
    archive = packed(project(tmp_path / "online"), signing.load_signer(keys["team"]))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        raw = tar.extractfile(bundle.MANIFEST).read()  # type: ignore[union-attr]
        sig = tar.extractfile(bundle.SIGNATURE).read()  # type: ignore[union-attr]
        bill = tar.extractfile(bundle.SBOM).read()  # type: ignore[union-attr]
    assert names[:2] == [bundle.MANIFEST, bundle.MANIFEST_SUM] and names[-2:] == [bundle.SBOM, bundle.SIGNATURE]
    assert json.loads(raw)["sbom"] == hashlib.sha256(bill).hexdigest()
    assert json.loads(raw)["signed_by"] == signing.load_signer(keys["team"]).key_id
    verdict = signing.verdict(raw, sig, signing.load_trusted((keys["team.pub"],)), "b")
    assert verdict.state == "signed"


def test_an_sbom_that_does_not_match_the_manifest_is_refused(tmp_path: Path) -> None:
    archive = packed(project(tmp_path / "online"), None)
    edited = tmp_path / "build-cache-20261130.tar"
    rewrite(archive, edited, lambda m, d: (m, b'{"bom": 2}\n') if m.name == bundle.SBOM else (m, d))
    offline = project(tmp_path / "offline")
    before = snapshot(offline.cache_dir)
    with pytest.raises(bundle.BundleError, match="sbom.cdx.json is damaged"):
        unpack(offline, edited, Console(quiet=True))
    with pytest.raises(bundle.BundleError, match="sbom.cdx.json does not match the manifest"):
        unpacking.read_claims(edited).sbom(str(edited))
    assert snapshot(offline.cache_dir) == before


@pytest.fixture
def minisign_tool() -> str:
    """Debian's minisign, which ``scripts/engines.sh install`` puts on every test machine (CI: required)."""
    found = shutil.which("minisign")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("minisign is not installed: scripts/engines.sh install puts it there", pytrace=False)
        pytest.skip("minisign is not installed (scripts/engines.sh install puts it there)")
    return found


def test_minisign_itself_verifies_our_signature_and_its_keys_sign_for_us(tmp_path: Path, keys: dict[str, Path],
                                                                      minisign_tool: str) -> None:
    signer = signing.load_signer(keys["team"])
    archive = packed(project(tmp_path / "online"), signer)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", members=[tar.getmember(bundle.MANIFEST), tar.getmember(bundle.SIGNATURE)],
                       filter="data")
    ok = subprocess.run([minisign_tool, "-Vm", str(tmp_path / "x" / bundle.MANIFEST), "-p", str(keys["team.pub"])],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "Trusted comment: offline-build bundle of demo 1, created 2026-11-29T12:00:00Z" in ok.stdout
    other = subprocess.run([minisign_tool, "-Vm", str(tmp_path / "x" / bundle.MANIFEST), "-p", str(keys["other.pub"])],
                           capture_output=True, text=True)
    assert other.returncode != 0
    # A key pair made by minisign (-W: no password) signs bundles that setup trusts with its .pub.
    subprocess.run([minisign_tool, "-G", "-W", "-p", str(tmp_path / "std.pub"), "-s", str(tmp_path / "std.key")],
                   check=True, capture_output=True)
    theirs = packed(project(tmp_path / "b"), signing.load_signer(tmp_path / "std.key"))
    offline = trusting(project(tmp_path / "offline"), tmp_path / "std.pub")
    assert unpack(offline, theirs, Console(quiet=True)).signature.state == "signed"


def test_a_signature_stripped_from_a_signed_bundle_is_refused_trusted_keys_or_not(
        tmp_path: Path, keys: dict[str, Path]) -> None:
    """The manifest names its signer before it is signed: losing the signature is an alteration, not "unsigned"."""
    signer = signing.load_signer(keys["team"])
    archive = packed(project(tmp_path / "online"), signer)
    stripped = tmp_path / "build-cache-20261130.tar"
    rewrite(archive, stripped, lambda m, d: None if m.name == bundle.SIGNATURE else (m, d))
    message = f"{{w}} was signed by key {signer.key_id}, and its signature is missing"
    _refused(project(tmp_path / "open"), stripped, message)
    _refused(trusting(project(tmp_path / "offline"), keys["team.pub"]), stripped, message)


def test_a_signature_copied_from_another_bundle_is_refused(tmp_path: Path, keys: dict[str, Path]) -> None:
    signer = signing.load_signer(keys["team"])
    first = packed(project(tmp_path / "one"), signer)
    proj = project(tmp_path / "two")
    (proj.cache_dir / "resources" / "models").mkdir(parents=True)
    (proj.cache_dir / "resources" / "models" / "other.txt").write_text("other\n")
    second = packed(proj, signer)
    with tarfile.open(first) as tar:
        borrowed = tar.extractfile(bundle.SIGNATURE).read()  # type: ignore[union-attr]
    swapped = tmp_path / "build-cache-20261130.tar"
    rewrite(second, swapped, lambda m, d: (m, borrowed) if m.name == bundle.SIGNATURE else (m, d))
    _refused(trusting(project(tmp_path / "offline"), keys["team.pub"]), swapped,
             f"{{w}}: its signature (key {signer.key_id}) does not match its manifest")


def test_a_valid_signature_by_another_key_than_the_manifest_names_is_refused_trusted_or_not(
        tmp_path: Path, keys: dict[str, Path]) -> None:
    """The manifest names key team; its signature is a good one over the same bytes, by key other.

    Only the signer-mismatch check tells: the signature verifies against *other*'s
    key, so trusting *other* (or nothing) would otherwise take the bundle.
    """
    team, other = signing.load_signer(keys["team"]), signing.load_signer(keys["other"])
    assert team.key_id != other.key_id
    archive = packed(project(tmp_path / "online"), team)
    with tarfile.open(archive) as tar:
        raw = tar.extractfile(bundle.MANIFEST).read()  # type: ignore[union-attr]
    assert json.loads(raw)["signed_by"] == team.key_id
    resigned = other.sign(raw, "offline-build bundle of demo 1, created 2026-11-29T12:00:00Z")
    swapped = tmp_path / "build-cache-20261130.tar"
    rewrite(archive, swapped, lambda m, d: (m, resigned) if m.name == bundle.SIGNATURE else (m, d))
    message = f"{{w}} names key {team.key_id} as its signer, and its signature is by key {other.key_id}"
    _refused(trusting(project(tmp_path / "offline"), keys["other.pub"]), swapped, message)
    _refused(project(tmp_path / "open"), swapped, message)
    # The same check, at the level setup calls it: the signature itself is good.
    pub = signing.load_trusted((keys["other.pub"],))
    assert signing.verdict(raw, resigned, pub, "b").state == "signed"
    with pytest.raises(signing.SigningError, match="as its signer"):
        signing.verdict(raw, resigned, pub, "b", signed_by=team.key_id)


def test_an_oversized_or_unreadable_signature_is_one_message(tmp_path: Path, keys: dict[str, Path]) -> None:
    archive = packed(project(tmp_path / "online"), signing.load_signer(keys["team"]))
    for name, data in (("big", b"x" * (bundle.MAX_SIGNATURE + 1)), ("junk", b"not a signature\n")):
        edited = tmp_path / f"build-cache-2026113{len(name)}.tar"
        rewrite(archive, edited, lambda m, d: (m, data) if m.name == bundle.SIGNATURE else (m, d))  # noqa: B023
        offline = trusting(project(tmp_path / name), keys["team.pub"])
        before = snapshot(offline.cache_dir)
        with pytest.raises((bundle.BundleError, signing.SigningError)) as raised:
            unpack(offline, edited, Console(quiet=True))
        expected = "is 8193 bytes, not a minisign signature" if name == "big" else "its signature is unreadable"
        assert expected in raised.value.message
        assert snapshot(offline.cache_dir) == before


def test_split_parts_and_a_delta_are_signed_the_same_way(tmp_path: Path, keys: dict[str, Path]) -> None:
    signer = signing.load_signer(keys["team"])
    online = project(tmp_path / "online")
    archive = packed(online, signer)
    offline = trusting(project(tmp_path / "offline"), keys["team.pub"])
    folder = bundle.split(archive, 4096)
    parts = sorted(folder.glob(f"{archive.name}.[0-9][0-9][0-9]"))
    assert len(parts) > 2  # the manifest in the first, the signature in the last
    assert unpack(offline, folder, Console(quiet=True)).signature.state == "signed"
    # A delta of it: its own manifest, signed, naming what it extends.
    base_manifest = unpacking.load_manifest(folder)[0]
    (online.cache_dir / "resources" / "models" / "new.txt").write_text("new\n")
    manifest = bundle.Manifest(project=online.name, version="1", platforms=[], services={"svc": {}},
                               base_images={}, created="2026-11-30T12:00:00Z",
                               extends={"bundle": archive.name, "manifest_sha256": "0" * 64})
    delta = online.cache_dir / "build-cache-20261130-delta.tar"
    packing.write_hashed(delta, manifest, bundle.collect(online.cache_dir), base_manifest, signer=signer)
    done = unpack(offline, delta, Console(quiet=True))
    assert done.signature.state == "signed"
    assert (offline.cache_dir / "resources" / "models" / "new.txt").read_text() == "new\n"


def test_a_format_2_bundle_without_sbom_or_signer_still_sets_up(tmp_path: Path) -> None:
    archive = packed(project(tmp_path / "online"), None)
    old = tmp_path / "build-cache-20250101.tar"

    def downgrade(member, data):  # noqa: ANN001, ANN202
        if member.name == bundle.SBOM:
            return None
        if member.name == bundle.MANIFEST:
            doc = json.loads(data)
            for key in ("sbom", "signed_by"):
                del doc[key]
            doc["format_version"] = 2
            data = downgrade.raw = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
        if member.name == bundle.MANIFEST_SUM:
            data = bundle.manifest_sum(downgrade.raw)
        return member, data

    rewrite(archive, old, downgrade)
    offline = project(tmp_path / "offline")
    done = unpack(offline, old, Console(quiet=True))
    assert (done.manifest.format_version, done.manifest.sbom, done.signature.state) == (2, "", "unsigned")
    assert not (offline.cache_dir / bundle.SBOM).exists()
    with pytest.raises(bundle.BundleError, match="carries no bill of materials"):
        sbom.of_bundle(offline.cache_dir, old)
