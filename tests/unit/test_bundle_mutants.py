"""The bundle's promises, each written so that a mutation of bundle.py that breaks it fails.

Found by a mutation-testing run (mutmut) over bundle.py: these killed mutants
the rest of the suite let live. A refusal is checked by its whole text (the
problem and the fix the user reads) and by the store it leaves unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from offline_build import bundle, packing, unpacking
from offline_build.config import Project, load
from offline_build.setup import unpack
from offline_build.files import CHUNK
from offline_build.store import Layout
from tests.unit import oci, twopass

SAFE = "the bundle is not safe to extract"
NOT_OURS = "this is not an offline-build bundle"
SVC = hashlib.sha256(b"svc layer").hexdigest()
M_TXT = "files/resources/models/m.txt"


def project(root: Path) -> Project:
    (root / "svc").mkdir(parents=True, exist_ok=True)
    (root / "svc" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (root / "offline.yaml").write_text("project: demo\nservices:\n  svc:\n    context: svc\n")
    return load(root / "offline.yaml", environ={})


def pack(proj: Project, resources: dict[str, bytes] | None = None) -> Path:
    oci.image(oci.new(proj.store), "cache-svc", [b"base", b"svc layer"])
    for name, data in (resources or {"models/m.txt": b"weights\n"}).items():
        (proj.cache_dir / "resources" / name).parent.mkdir(parents=True, exist_ok=True)
        (proj.cache_dir / "resources" / name).write_bytes(data)
    members = bundle.collect(proj.cache_dir)
    manifest = bundle.Manifest(project=proj.name, version="1", platforms=[], services={"svc": {}}, base_images={})
    manifest.files = twopass.hash_members(members)
    out = proj.cache_dir / "build-cache-20260101.tar"
    twopass.write(out, manifest, twopass.unique_members(members, manifest.files))
    return out


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".work" not in p.parts} if root.exists() else {}


def rewrite(src: Path, dst: Path, change: Any) -> None:
    """Copy a tar member by member; *change* edits (member, data), drops one (None), or adds (a list)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            result = change(m, tin.extractfile(m).read())  # type: ignore[union-attr]
            for m2, data in (result if isinstance(result, list) else [result] if result else []):
                m2.size = len(data)
                tout.addfile(m2, io.BytesIO(data))


def edit_manifest(edit: Any, checksum: bool = True) -> Any:
    """Change the manifest's JSON (or its raw bytes) and give it a checksum that matches."""
    raw: list[bytes] = []

    def change(m: tarfile.TarInfo, data: bytes) -> Any:
        if m.name == "manifest.json":
            doc = json.loads(data)
            raw.append(edit(doc) or json.dumps(doc).encode())
            return m, raw[0]
        if m.name == "manifest.json.sha256":
            return (m, hashlib.sha256(raw[0]).hexdigest().encode()) if checksum else None
        return m, data
    return change


def member(name: str, extra: bool = False, **attrs: Any) -> Any:
    def change(m: tarfile.TarInfo, data: bytes) -> Any:
        if m.name != M_TXT:
            return m, data
        new = tarfile.TarInfo(name)
        for key, value in attrs.items():
            setattr(new, key, value)
        return [(m, data), (new, data)] if extra else (new, data)
    return change


def _newer_without_tool_version(doc: dict[str, Any]) -> None:
    doc["format_version"] = 99
    del doc["tool_version"]


def _bad_blob_sha(doc: dict[str, Any]) -> None:
    next(f for f in doc["files"] if f["path"].endswith(SVC))["sha256"] = "0" * 64


def _flip_svc(m: tarfile.TarInfo, data: bytes) -> Any:
    return (m, b"svc layeR") if data == b"svc layer" else (m, data)


REFUSED = {
    "no manifest": (lambda m, d: None if m.name.startswith("manifest.json") else (m, d),
                    "{w}: no manifest.json inside", NOT_OURS),
    "manifest not JSON": (edit_manifest(lambda doc: b"not json"), "{w}: manifest.json is not a bundle manifest",
                          "this file was not written by offline.export"),
    "newer format": (edit_manifest(lambda doc: doc.update(format_version=99, tool_version="9.9")),
                     "{w}: bundle format 99 is newer than this tool reads (5)",
                     "upgrade offline-build on this machine to the version that wrote it (9.9)"),
    "newer format, no tool version": (
        edit_manifest(_newer_without_tool_version),
        "{w}: bundle format 99 is newer than this tool reads (5)",
        "upgrade offline-build on this machine to the version that wrote it (?)"),
    "malformed": (edit_manifest(lambda doc: doc.__delitem__("project")), "{w}: manifest.json is malformed ('project')",
                  "re-export the bundle on the online machine"),
    "checksum mismatch": (lambda m, d: (m, b"0" * 64) if m.name == "manifest.json.sha256" else (m, d),
                          "{w}: manifest.json does not match its checksum",
                          "the bundle was altered or damaged: copy it again from the online machine"),
    "no checksum": (edit_manifest(lambda doc: None, checksum=False), "{w}: no manifest.json.sha256 inside",
                    "the copy is incomplete: copy it again"),
    "blob misnamed in the manifest": (edit_manifest(_bad_blob_sha),
                                      f"{{w}}: blobs/sha256/{SVC} does not hash to its name in manifest.json",
                                      "the bundle was altered: copy it again from the online machine"),
    "unsafe path in the manifest": (
        edit_manifest(lambda doc: doc["files"].append({**doc["files"][-1], "path": "files/resources/../x"})),
        "{w}: manifest.json names an unsafe path 'files/resources/../x'", SAFE),
    "unlisted member": (member("files/resources/other.txt", extra=True),
                        "{w}: files/resources/other.txt is not listed in the manifest", "the bundle was altered"),
    "missing member": (lambda m, d: None if m.name == M_TXT else (m, d),
                       f"{{w}}: {M_TXT} is missing from the bundle", "the copy is incomplete: copy it again"),
    "symlink": (member(M_TXT, type=tarfile.SYMTYPE, linkname="/etc/passwd"),
                f"{{w}}: member '{M_TXT}' is not a regular file", SAFE),
    "absolute path": (member("/etc/evil"), "{w}: member '/etc/evil' has an unsafe path", SAFE),
    "unexpected member": (member("README"), "{w}: unexpected member 'README'", NOT_OURS),
    "twice": (member(M_TXT, extra=True), f"{{w}}: member '{M_TXT}' appears twice (or differs only in case)", SAFE),
    "sticky bit": (member(M_TXT, mode=0o1644), f"{{w}}: member '{M_TXT}' has setuid/setgid/sticky bits", SAFE),
    "damaged blob": (_flip_svc, f"{{w}}: blobs/sha256/{SVC} is damaged (checksum mismatch)",
                     "copy the bundle again from the online machine"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_refused_bundle_says_exactly_what_and_how_to_fix_it_and_changes_nothing(tmp_path: Path, case: str) -> None:
    change, message, hint = REFUSED[case]
    bad = tmp_path / "bad.tar"
    rewrite(pack(project(tmp_path / "online")), bad, change)
    offline = project(tmp_path / "offline")
    oci.image(oci.new(offline.store), "cache-other", [b"already here"])
    before = snapshot(offline.cache_dir)
    with pytest.raises(bundle.BundleError) as info:
        unpack(offline, bad, Console(quiet=True))
    assert str(info.value) == f"{message.format(w=bad)}\n  fix: {hint}"
    assert snapshot(offline.cache_dir) == before


def test_what_is_not_a_bundle_file_is_named_with_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    cases = {folder: f"{folder} is a folder but not a bundle (no parts.json in it)\n"
                     "  fix: pass the build-cache-*.tar file, or the folder of its parts",
             tmp_path / "absent.tar": f"{tmp_path / 'absent.tar'}: no such bundle\n"
                                      "  fix: check the path given to --bundle"}
    for path, text in cases.items():
        with pytest.raises(bundle.BundleError) as info:
            unpacking.open_archive(path)
        assert str(info.value) == text
    with pytest.raises(bundle.BundleError) as info:
        unpacking.open_archive(junk)
    assert str(info.value) == (f"{junk}: not a bundle (not a tar archive)\n"
                               "  fix: pass the build-cache-*.tar offline.export wrote, or the folder of its parts")


def test_load_manifest_reads_the_side_file_or_the_bundle_alike_and_names_the_file_it_refuses(tmp_path: Path) -> None:
    archive = pack(project(tmp_path / "online"))
    from_bundle = unpacking.load_manifest(archive)
    side = tmp_path / "build-cache-20260101.manifest.json"
    side.write_bytes(from_bundle[0].to_json())
    assert unpacking.load_manifest(side)[0] == from_bundle[0]
    assert unpacking.load_manifest(side)[1] == hashlib.sha256(side.read_bytes()).hexdigest()
    side.write_text("{}")
    with pytest.raises(bundle.BundleError) as info:
        unpacking.load_manifest(side)
    assert info.value.message == f"{side}: manifest.json is not a bundle manifest"
    for change, text in ((member("README"), "unexpected member 'README'"),
                         (lambda m, d: None if m.name.startswith("manifest") else (m, d), "no manifest.json inside")):
        bad = tmp_path / "bad.tar"
        rewrite(archive, bad, change)
        with pytest.raises(bundle.BundleError) as info:
            unpacking.load_manifest(bad)
        assert info.value.message == f"{bad}: {text}" and info.value.hint == NOT_OURS


def test_every_manifest_field_survives_the_round_trip_and_an_old_manifest_reads_with_defaults() -> None:
    full = bundle.Manifest(project="p", version="7", platforms=["linux/arm64"], services={"svc": {"k": "v"}},
                           base_images={"debian:12": "base-debian_12"}, files=[bundle.FileEntry("index.json", 3, "ab")],
                           engine={"version": "26.1"}, network="none", extends={"bundle": "b.tar"},
                           builder={"name": "x", "image": "moby/buildkit:v0.13", "tag": "builder-x"},
                           created="2026-01-01T00:00:00Z", tool_version="9.9", format_version=1)
    raw = full.to_json()
    assert bundle.Manifest.from_json(raw, "here") == full
    assert raw == json.dumps(json.loads(raw), indent=2, sort_keys=True).encode() + b"\n"  # readable, diffable
    old = bundle.Manifest.from_json(b'{"format_version": 1, "project": "p", "version": "1", "services": {},'
                                    b' "files": []}', "here")
    assert (old.created, old.network, old.tool_version, old.engine, old.builder) == ("", "", "", {}, {})


def test_check_members_counts_skips_folders_and_allows_exec_bits() -> None:
    def reg(name: str, mode: int = 0o644) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mode = mode
        return info

    folder = tarfile.TarInfo("files/resources/models")
    folder.type = tarfile.DIRTYPE
    members = [folder, reg("oci-layout"), reg("index.json", 0o755), reg("manifest.json")]
    assert [m.name for m in unpacking.check_members(members, "b.tar")] == ["oci-layout", "index.json", "manifest.json"]
    limit = unpacking.MAX_MEMBERS
    many = [reg(f"files/resources/{i}") for i in range(limit)]
    assert len(unpacking.check_members(iter(many), "b.tar")) == limit  # the limit itself is allowed
    with pytest.raises(bundle.BundleError) as info:
        unpacking.check_members(iter([*many, reg("files/resources/one more")]), "b.tar")
    assert str(info.value) == f"b.tar: more than {limit} members\n  fix: {NOT_OURS}"


def test_what_collect_leaves_out_dot_files_of_resources_and_half_written_captures(tmp_path: Path) -> None:
    proj = project(tmp_path)
    oci.new(proj.store).write_index([])
    res = proj.cache_dir / "resources"
    for rel in ("models/m.txt", "models/.cache/x", ".env"):
        (res / rel).parent.mkdir(parents=True, exist_ok=True)
        (res / rel).write_text("x")
    yarn = tmp_path / "yarn"
    for rel in ("key/pkg/.yarn-metadata.json", ".key.partial/pkg/a"):
        (yarn / rel).parent.mkdir(parents=True, exist_ok=True)
        (yarn / rel).write_text("x")
    names = {n for n, _ in bundle.collect(proj.cache_dir, {"resources": res, "yarn": yarn})}
    assert names - {"oci-layout", "index.json"} == {"files/resources/models/m.txt",
                                                    "files/yarn/key/pkg/.yarn-metadata.json"}


def test_packing_a_damaged_store_blob_is_refused_and_progress_counts_every_byte(tmp_path: Path) -> None:
    proj = project(tmp_path)
    pack(proj)
    members = bundle.collect(proj.cache_dir)
    seen: list[int] = []
    entries = twopass.hash_members(members, seen.append)
    assert sum(seen) == sum(e.size for e in entries)
    written: list[int] = []
    out = tmp_path / "new" / "folder" / "b.tar"
    # The packer itself, not the tests' reference: a new folder, progress over every file, plain members.
    packing.write_hashed(out, bundle.Manifest("demo", "1", [], {}, {}), members, progress=written.append)
    assert sum(written) == sum(e.size for e in entries)
    with tarfile.open(out) as tar:  # what `tar tv` shows: plain files, no executable bit, no dates, no owner
        assert {(m.type, m.mode, m.mtime, m.uid, m.gid, m.uname, m.gname) for m in tar.getmembers()} == {
            (tarfile.REGTYPE, 0o644, 0, 0, 0, "", "")}
    victim = Layout(proj.store).blobs / SVC
    victim.write_bytes(b"svc layeR")
    with pytest.raises(bundle.BundleError) as info:
        twopass.hash_members(members)
    assert str(info.value) == (f"{victim}: content does not match its digest\n"
                               "  fix: the store is damaged: remove it and export again")


def test_a_delta_always_carries_the_index_and_packed_once_skips_only_repeats(tmp_path: Path) -> None:
    proj = project(tmp_path)
    archive = pack(proj)
    members = bundle.collect(proj.cache_dir)
    entries = twopass.hash_members(members)
    base, _ = unpacking.load_manifest(archive)
    assert [n for n, _ in twopass.delta_members(members, entries, base)] == ["oci-layout", "index.json"]
    same = [bundle.FileEntry("a", 1, "x"), bundle.FileEntry("b", 1, "x"), bundle.FileEntry("c", 1, "y")]
    paths = [(e.path, tmp_path / e.path) for e in same]
    assert twopass.unique_members(paths, same) == [paths[0], paths[2]]


def test_now_is_utc_in_iso_8601() -> None:
    stamp = bundle.now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert abs(time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())) < 120


def test_find_bundle_takes_parts_folders_ignores_other_files_and_breaks_a_tie_by_time(tmp_path: Path) -> None:
    with pytest.raises(bundle.BundleError) as info:
        unpacking.find_bundle(tmp_path)
    assert str(info.value) == (f"no bundle (build-cache-*.tar) in {tmp_path}\n"
                               "  fix: copy the bundle there, or pass --bundle PATH")
    (tmp_path / "build-cache-20260301.txt").write_text("notes")
    (tmp_path / "build-cache-20260101.tar").write_bytes(b"x")
    delta = tmp_path / "build-cache-20260101-delta.tar"
    delta.write_bytes(b"x")
    os.utime(delta, (time.time() + 60, time.time() + 60))  # written later the same day
    assert unpacking.find_bundle(tmp_path) == delta
    parts = tmp_path / "build-cache-20260201"
    parts.mkdir()
    (parts / "parts.json").write_text("{}")
    assert unpacking.find_bundle(tmp_path) == parts


def test_setup_places_every_file_plain_and_whole_at_every_path(tmp_path: Path) -> None:
    """Copies of packed-once bytes land in new nested folders; a file bigger than a read chunk arrives whole."""
    big = os.urandom(CHUNK + 1)
    archive = pack(project(tmp_path / "online"), {"a/w.whl": b"wheel", "b/c/w.whl": b"wheel", "b/c/v.whl": b"wheel",
                                                  "big.bin": big})
    offline = project(tmp_path / "offline")
    unpack(offline, archive, Console(quiet=True))
    res = offline.cache_dir / "resources"
    assert [(res / n).read_bytes() for n in ("a/w.whl", "b/c/w.whl", "b/c/v.whl")] == [b"wheel"] * 3
    assert (res / "big.bin").read_bytes() == big
    blobs = list(Layout(offline.store).blobs.iterdir())
    assert blobs and {stat.S_IMODE(p.stat().st_mode) for p in blobs} == {0o644}
    with unpacking.open_archive(archive) as tar:
        members = unpacking.check_members(tar, "b")
        manifest = unpacking.read_manifest(tar, members, "b")
        seen: list[int] = []
        unpacking.extract_verified(tar, members, manifest, tmp_path / "scratch", "b", seen.append)
    assert sum(seen) == sum(m.size for m in members if not m.name.startswith("manifest.json"))
