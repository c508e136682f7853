"""The bundle archive: written atomically, verified before anything changes, extracted safely."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from rich.console import Console

from offline_build import bundle, packing, unpacking
from offline_build.captures.pip import PIP
from offline_build.config import Project, load
from offline_build.setup import unpack
from offline_build.store import Layout
from tests.unit import oci, twopass
from tests.unit.helpers import pack, project, rewrite, snapshot


def test_round_trip_into_an_empty_store(tmp_path: Path) -> None:
    online = project(tmp_path / "online")
    archive = pack(online)
    offline = project(tmp_path / "offline")
    done = unpack(offline, archive, Console(quiet=True))
    manifest, added = done.manifest, done.blobs_added
    assert manifest.project == "demo"
    assert set(Layout(offline.store).tags()) == {"cache-svc", "base-debian_bookworm-slim"}
    assert (offline.cache_dir / "resources" / "models" / "m.txt").read_text() == "weights\n"
    # The shared base layer is one blob in the bundle and in the store.
    with tarfile.open(archive) as tar:
        blobs = [m for m in tar.getnames() if m.startswith("blobs/")]
    assert len(blobs) == len(set(blobs)) == len(list(Layout(offline.store).blobs.iterdir()))
    assert added == len(blobs)


def test_setup_twice_changes_nothing(tmp_path: Path) -> None:
    archive = pack(project(tmp_path / "online"))
    offline = project(tmp_path / "offline")
    unpack(offline, archive, Console(quiet=True))
    before = snapshot(offline.store)
    done = unpack(offline, archive, Console(quiet=True))
    added, files = done.blobs_added, done.files
    assert (added, files) == (0, 0)
    assert snapshot(offline.store) == before


def test_only_reachable_blobs_are_packed(tmp_path: Path) -> None:
    proj = project(tmp_path / "p")
    archive = pack(proj)
    (Layout(proj.store).blobs / ("0" * 64)).write_bytes(b"stale blob from an old export")
    names = {name for name, _ in bundle.collect(proj.cache_dir)}
    assert f"blobs/sha256/{'0' * 64}" not in names
    assert archive.exists()


def test_write_is_atomic(tmp_path: Path) -> None:
    """A write that fails half-way leaves the earlier bundle of that name whole, and no partial file.

    The packer itself (packing.write_hashed, through bundle.atomic_output), not the tests' reference."""
    good = tmp_path / "good"
    good.write_bytes(b"a member's bytes" * 1000)
    out = tmp_path / "out.tar"
    out.write_bytes(b"the earlier bundle")
    # The second has a size (a folder's) but cannot be read: it fails after the manifest and the first went out.
    (tmp_path / "a-folder").mkdir()
    members = [("oci-layout", good), ("index.json", tmp_path / "a-folder")]
    with pytest.raises(IsADirectoryError):
        packing.write_hashed(out, bundle.Manifest("p", "1", [], {}, {}), members)
    assert out.read_bytes() == b"the earlier bundle"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "good", "out.tar"]
    with pytest.raises(RuntimeError), bundle.atomic_output(out) as fh:  # any failure, not only an OSError
        fh.write(b"half a bundle")
        raise RuntimeError("interrupted")
    assert out.read_bytes() == b"the earlier bundle"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "good", "out.tar"]
    written = packing.write_hashed(out, bundle.Manifest("p", "1", [], {}, {}), members[:1]).size
    assert written == out.stat().st_size and tarfile.is_tarfile(out)
    with tarfile.open(out) as tar:
        assert tar.getnames() == [bundle.MANIFEST, bundle.MANIFEST_SUM, "oci-layout"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "good", "out.tar"]


def flip_blob(m: tarfile.TarInfo, data: bytes):  # noqa: ANN201
    if m.name.startswith("blobs/") and len(data) > 4:
        return m, bytes([data[0] ^ 1]) + data[1:]
    return m, data


def drop(name_part: str):  # noqa: ANN201
    return lambda m, data: None if name_part in m.name else (m, data)


def as_symlink(m: tarfile.TarInfo, data: bytes):  # noqa: ANN201
    if m.name.startswith("files/"):
        m.type = tarfile.SYMTYPE
        m.linkname = "/etc/passwd"
        return m, b""
    return m, data


def rename(old: str, new: str):  # noqa: ANN201
    def change(m: tarfile.TarInfo, data: bytes):  # noqa: ANN202
        if m.name.startswith(old):
            m.name = new
        return m, data
    return change


def newer_format(m: tarfile.TarInfo, data: bytes):  # noqa: ANN201
    if m.name == "manifest.json":
        doc = json.loads(data)
        doc["format_version"] = 99
        return m, json.dumps(doc).encode()
    if m.name == "manifest.json.sha256":
        return None
    return m, data


def setuid(m: tarfile.TarInfo, data: bytes):  # noqa: ANN201
    if m.name.startswith("files/"):
        m.mode = 0o4755
    return m, data


def tampered_manifest(m: tarfile.TarInfo, data: bytes):  # noqa: ANN201
    if m.name == "manifest.json":
        return m, data.replace(b'"version": "1"', b'"version": "2"')
    return m, data


def blob_and_manifest_agree_on_other_bytes():  # noqa: ANN201
    """The poisoning case: a blob replaced, the manifest and its checksum rewritten to match."""
    edited: list[bytes] = []

    def change(m: tarfile.TarInfo, data: bytes):  # noqa: ANN202
        if m.name.startswith("blobs/") and data == b"svc layer":
            return m, b"evil layer"
        if m.name == "manifest.json":
            doc = json.loads(data)
            for f in doc["files"]:
                if f["sha256"] == hashlib.sha256(b"svc layer").hexdigest():
                    f["sha256"], f["size"] = hashlib.sha256(b"evil layer").hexdigest(), len(b"evil layer")
            edited.append(json.dumps(doc).encode())
            return m, edited[0]
        if m.name == "manifest.json.sha256":  # packed right after the manifest
            return m, hashlib.sha256(edited[0]).hexdigest().encode() + b"\n"
        return m, data
    return change


def blob_named_for_bytes_packed_once():  # noqa: ANN201
    """The poisoning case without a member: the manifest gives one blob's path another blob's bytes.

    Setup would write those bytes under that name as a packed-once copy.
    """
    edited: list[bytes] = []
    svc, base = (hashlib.sha256(b).hexdigest() for b in (b"svc layer", b"base"))

    def change(m: tarfile.TarInfo, data: bytes):  # noqa: ANN202
        if m.name == f"blobs/sha256/{svc}":
            return None
        if m.name == "manifest.json":
            doc = json.loads(data)
            for f in doc["files"]:
                if f["sha256"] == svc:
                    f["sha256"], f["size"] = base, len(b"base")
            edited.append(json.dumps(doc).encode())
            return m, edited[0]
        if m.name == "manifest.json.sha256":
            return m, hashlib.sha256(edited[0]).hexdigest().encode() + b"\n"
        return m, data
    return change


def without_manifest_checksum(m: tarfile.TarInfo, data: bytes):  # noqa: ANN201
    return None if m.name == "manifest.json.sha256" else (m, data)


BAD = {
    "flipped byte in a blob": (flip_blob, "is damaged"),
    "missing member": (drop("files/resources"), "is missing from the bundle"),
    "symlink member": (as_symlink, "not a regular file"),
    "absolute path": (rename("files/resources", "/etc/evil"), "unsafe path"),
    "dot-dot path": (rename("files/resources", "files/resources/../../x"), "unsafe path"),
    "unlisted member": (rename("files/resources", "files/resources/other.txt"), "not listed in the manifest"),
    "unexpected member": (rename("files/resources", "README"), "unexpected member"),
    "newer format": (newer_format, "newer than this tool reads"),
    "setuid bit": (setuid, "setuid"),
    "manifest edited": (tampered_manifest, "does not match its checksum"),
    "no manifest checksum": (without_manifest_checksum, "no manifest.json.sha256 inside"),
    "blob agreeing with other bytes": (blob_and_manifest_agree_on_other_bytes(), "does not hash to its name"),
    "blob named for bytes packed once": (blob_named_for_bytes_packed_once(), "does not hash to its name"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_bundle_is_refused_and_the_store_is_untouched(tmp_path: Path, case: str) -> None:
    change, words = BAD[case]
    archive = pack(project(tmp_path / "online"))
    bad = tmp_path / "bad.tar"
    rewrite(archive, bad, change)
    offline = project(tmp_path / "offline")
    oci.image(oci.new(offline.store), "cache-other", [b"already here"])
    before = snapshot(offline.cache_dir)
    with pytest.raises(bundle.BundleError, match=words):
        unpack(offline, bad, Console(quiet=True))
    assert snapshot(offline.cache_dir) == before


def test_truncated_and_empty_and_folder_are_refused(tmp_path: Path) -> None:
    archive = pack(project(tmp_path / "online"))
    offline = project(tmp_path / "offline")
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    for path in (truncated, empty, tmp_path):
        with pytest.raises(bundle.BundleError):
            unpack(offline, path, Console(quiet=True))
    assert not offline.store.exists()


@pytest.mark.parametrize("cut", [0.02, 0.05, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_a_copy_that_stopped_anywhere_is_named_damaged(tmp_path: Path, cut: float) -> None:
    """A USB copy cut off in a header or inside a member (a cut in a tar header raised tarfile.ReadError through
    setup, verify, sbom and export --since): setup refuses it, named."""
    archive = pack(project(tmp_path / "online"))
    with tarfile.open(archive) as tar:  # past the last member's bytes, a tar holds only padding
        end = max(m.offset_data + m.size for m in tar.getmembers())
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: int(end * cut)])
    with pytest.raises(bundle.BundleError) as setup:
        unpack(project(tmp_path / "offline"), truncated, Console(quiet=True))
    try:  # the manifest alone (sbom, export --since) reads well when the cut is past it
        unpacking.load_manifest(truncated)
    except bundle.BundleError as exc:
        assert "damaged or truncated" in str(exc), exc
    assert setup.value.hint in ("the copy is damaged or truncated: copy it again",  # a header cut, or no tar at all
                                "the copy is incomplete: copy it again"), setup.value  # a member gone whole


def test_a_bundle_for_another_project_is_refused(tmp_path: Path) -> None:
    archive = pack(project(tmp_path / "online", "shop"))
    with pytest.raises(bundle.BundleError, match="for project 'shop', not 'demo'"):
        unpack(project(tmp_path / "offline"), archive, Console(quiet=True))


def test_find_bundle_takes_the_newest(tmp_path: Path) -> None:
    for day in ("20260101", "20260301", "20260201"):
        (tmp_path / f"build-cache-{day}.tar").write_bytes(b"x")
    (tmp_path / ".build-cache-20260401.tar.partial").write_bytes(b"x")
    assert unpacking.find_bundle(tmp_path).name == "build-cache-20260301.tar"
    with pytest.raises(bundle.BundleError, match="no bundle"):
        unpacking.find_bundle(tmp_path / "nothing")


def add_image(proj: Project, tag: str, layers: list[bytes]) -> None:
    oci.image(Layout(proj.store), tag, layers)


def pack_full_or_delta(proj: Project, name: str, since: Path | None = None) -> Path:
    members = bundle.collect(proj.cache_dir)
    manifest = bundle.Manifest(project=proj.name, version="1", platforms=[], services={}, base_images={})
    manifest.files = twopass.hash_members(members)
    if since:
        base, sha = unpacking.load_manifest(since)
        members = twopass.delta_members(members, manifest.files, base)
        manifest.extends = {"bundle": since.name, "manifest_sha256": sha}
    out = proj.cache_dir / name
    twopass.write(out, manifest, members)
    return out


def test_a_since_of_another_project_or_missing_is_refused_before_any_build(tmp_path: Path) -> None:
    from offline_build.errors import OfflineBuildError
    from offline_build.export import check_since

    demo = project(tmp_path / "demo")
    check_since(demo, pack(project(tmp_path / "again")))  # the same project's: taken
    with pytest.raises(OfflineBuildError, match="is a bundle of project 'shop', not 'demo'"):
        check_since(demo, pack(project(tmp_path / "shop", "shop")))
    with pytest.raises(OfflineBuildError, match="--since .*gone.tar: no such bundle or manifest") as info:
        check_since(demo, tmp_path / "gone.tar")
    assert "the last bundle carried to the site" in str(info.value)  # not "--bundle": the flag given was --since


def test_a_delta_sets_up_exactly_like_the_full_bundle(tmp_path: Path) -> None:
    online = project(tmp_path / "online")
    first = pack(online)
    add_image(online, "cache-svc", [b"base", b"svc layer, one line changed"])
    delta = pack_full_or_delta(online, "build-cache-20260102-delta.tar", since=first)
    full = pack_full_or_delta(online, "build-cache-20260102.tar")
    with tarfile.open(delta) as d, tarfile.open(full) as f:
        delta_blobs = [m for m in d.getnames() if m.startswith("blobs/")]
        assert 0 < len(delta_blobs) < len([m for m in f.getnames() if m.startswith("blobs/")])
        assert "files/resources/models/m.txt" not in d.getnames()
    via_delta = project(tmp_path / "a")
    unpack(via_delta, first, Console(quiet=True))
    unpack(via_delta, delta, Console(quiet=True))
    # The same machine state before, a full bundle instead of the delta.
    via_full = project(tmp_path / "b")
    unpack(via_full, first, Console(quiet=True))
    unpack(via_full, full, Console(quiet=True))
    assert snapshot(via_delta.store) == snapshot(via_full.store)
    assert snapshot(via_delta.cache_dir / "resources") == snapshot(via_full.cache_dir / "resources")


def test_a_delta_without_its_base_is_refused_naming_what_is_missing(tmp_path: Path) -> None:
    online = project(tmp_path / "online")
    first = pack(online)
    add_image(online, "cache-svc", [b"base", b"changed"])
    delta = pack_full_or_delta(online, "d.tar", since=first)
    empty = project(tmp_path / "empty")
    with pytest.raises(bundle.BundleError, match=r"is a delta of build-cache-20260101.tar, and blobs/sha256/\w+"
                                                 r" from it is not here") as info:
        unpack(empty, delta, Console(quiet=True))
    assert "first" in str(info.value)
    assert not empty.store.exists()


def test_split_parts_round_trip_and_name_a_missing_or_damaged_part(tmp_path: Path) -> None:
    online = project(tmp_path / "online")
    archive = pack(online)
    whole = archive.read_bytes()
    folder = bundle.split(archive, 4096)
    parts = sorted(folder.glob("*.tar.0*"))
    assert len(parts) == -(-len(whole) // 4096) and not archive.exists()
    assert b"".join(p.read_bytes() for p in parts) == whole
    for given in (folder, parts[0]):
        target = project(tmp_path / f"from-{given.name}")
        unpack(target, given, Console(quiet=True))
        assert set(Layout(target.store).tags()) == {"cache-svc", "base-debian_bookworm-slim"}
    good = parts[1].read_bytes()
    parts[1].write_bytes(b"x" + good[1:])
    with pytest.raises(bundle.BundleError, match=f"part {parts[1].name} is damaged"):
        unpack(project(tmp_path / "c"), folder, Console(quiet=True))
    parts[1].write_bytes(good)
    parts[2].unlink()
    with pytest.raises(bundle.BundleError, match=f"part {parts[2].name} is missing"):
        unpack(project(tmp_path / "d"), folder, Console(quiet=True))


def test_split_size_parsing() -> None:
    assert bundle.parse_size("3900M") == 3900 * 2**20
    assert bundle.parse_size("4g") == 4 * 2**30
    with pytest.raises(bundle.BundleError, match="not a size"):
        bundle.parse_size("big")
    assert bundle.parse_size("1M") == 2**20
    for tiny in ("1", "1023K"):  # one part per byte of the bundle: refused
        with pytest.raises(bundle.BundleError, match=f"--split-size '{tiny}' is below 1M"):
            bundle.parse_size(tiny)


def pack_with_copies(proj: Project, manifest_edit=None) -> Path:  # noqa: ANN001
    """Two resources with the same bytes, packed the way export packs (each content once)."""
    oci.image(oci.new(proj.store), "cache-svc", [b"layer"])
    for name in ("a", "b"):
        (proj.cache_dir / "resources" / name).mkdir(parents=True)
        (proj.cache_dir / "resources" / name / "wheel.whl").write_bytes(b"the same wheel\n")
    members = bundle.collect(proj.cache_dir)
    manifest = bundle.Manifest(project=proj.name, version="1", platforms=[], services={"svc": {}}, base_images={})
    manifest.files = twopass.hash_members(members)
    if manifest_edit:
        manifest_edit(manifest)
    out = proj.cache_dir / "build-cache-20260101.tar"
    twopass.write(out, manifest, twopass.unique_members(members, manifest.files))
    return out


def test_the_same_bytes_travel_once_and_land_at_every_path(tmp_path: Path) -> None:
    archive = pack_with_copies(project(tmp_path / "online"))
    with tarfile.open(archive) as tar:
        wheels = [n for n in tar.getnames() if n.endswith("wheel.whl")]
    assert wheels == ["files/resources/a/wheel.whl"]
    offline = project(tmp_path / "offline")
    unpack(offline, archive, Console(quiet=True))
    for name in ("a", "b"):
        placed = offline.cache_dir / "resources" / name / "wheel.whl"
        assert placed.read_bytes() == b"the same wheel\n"
        # The copy too is a plain 0644 file: captures are bind-mounted, and modes are part of the cache key.
        assert placed.stat().st_mode & 0o7777 == 0o644, (name, oct(placed.stat().st_mode))


def test_a_copy_outside_the_bundle_folders_is_refused(tmp_path: Path) -> None:
    def escape(manifest: bundle.Manifest) -> None:
        first = manifest.files[-1]
        manifest.files.append(bundle.FileEntry("files/resources/../../../evil", first.size, first.sha256))

    archive = pack_with_copies(project(tmp_path / "online"), escape)
    offline = project(tmp_path / "offline")
    with pytest.raises(bundle.BundleError, match="unsafe path 'files/resources/../../../evil'"):
        unpack(offline, archive, Console(quiet=True))
    assert not (tmp_path / "evil").exists() and snapshot(offline.cache_dir) == {}


def test_setup_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    from offline_build.setup import setup

    archive = pack(project(tmp_path / "online"))
    offline = project(tmp_path / "offline")
    console = Console(record=True, width=400)
    assert setup(offline, archive, None, console, dry_run=True) is None  # type: ignore[arg-type]
    lines = console.export_text().splitlines()
    assert lines[0] == "# signature: unsigned: anyone who could write the bundle could have changed it (see SECURITY.md)"
    assert lines[1].startswith(f"# verify {archive} against its manifest")
    assert f"# place the bundle's files/resources/ in {offline.cache_dir / 'resources'}" in lines
    assert lines[-1] == ("docker load  # stdin: debian:bookworm-slim from the store; "
                         "only on engines that cannot read oci-layout:// contexts")
    assert snapshot(offline.cache_dir) == {}


def test_a_cache_folder_the_tool_creates_is_git_ignored_and_one_it_finds_is_left_alone(tmp_path: Path) -> None:
    from offline_build.state import lock

    proj = project(tmp_path)
    with lock(proj.cache_dir):
        pass
    assert (proj.cache_dir / ".gitignore").read_text() == "*\n"
    mine = tmp_path / "usb"
    mine.mkdir()
    with lock(mine):
        pass
    assert not (mine / ".gitignore").exists()


def test_the_apt_folder_is_git_ignored_and_its_gitignore_never_travels(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from offline_build.captures import replace_captures
    from offline_build.captures.apt import APT, CaptureApt, capture_apt

    def run(image: str, command: list[str], **kwargs: object) -> None:  # what apt-get leaves behind
        (lists, _), (archives, _) = kwargs["volumes"]  # type: ignore[misc]
        (Path(lists) / "deb_dists_bookworm_main_Packages.gz").write_bytes(b"index")
        (Path(archives) / "curl_8.0_amd64.deb").write_bytes(b"deb")

    proj = project(tmp_path / "online")
    step = CaptureApt(title="capture", base="debian:bookworm-slim",
                      dest=APT.context_dir(proj, "debian:bookworm-slim"), packages=("curl",), platforms=("linux/amd64",))
    rt = SimpleNamespace(docker=SimpleNamespace(run=run))
    assert capture_apt(rt, step) == {"debs": 1}
    assert capture_apt(rt, step) == {"debs": 1}  # again: the folder swap leaves the file be
    assert (proj.apt.dir / ".gitignore").read_text() == "*\n"
    assert sorted(p.name for p in proj.apt.dir.iterdir()) == [".gitignore", step.dest.name]

    names = [name for name, _ in bundle.collect(proj.cache_dir, {"apt": proj.apt.dir})]
    assert f"files/apt/{step.dest.name}/linux_amd64/archives/curl_8.0_amd64.deb" in names
    assert not [n for n in names if n.endswith(".gitignore")]

    # Offline, setup places the capture and is the one to make apt-lists/ there.
    offline = project(tmp_path / "offline")
    assert replace_captures(proj.apt.dir, offline.apt.dir) == 1
    assert (offline.apt.dir / ".gitignore").read_text() == "*\n"
    assert (offline.apt.dir / step.dest.name / "linux_amd64" / "archives" / "curl_8.0_amd64.deb").is_file()


def test_a_blob_that_does_not_hash_to_its_name_is_refused_even_when_the_manifest_agrees(tmp_path: Path) -> None:
    archive = pack(project(tmp_path / "online"))
    bad = tmp_path / "bad.tar"
    rewrite(archive, bad, blob_and_manifest_agree_on_other_bytes())
    with tarfile.open(bad) as tar:  # the rewrite took: the manifest agrees with the evil bytes
        assert any(tar.extractfile(m).read() == b"evil layer" for m in tar.getmembers()  # type: ignore[union-attr]
                   if m.name.startswith("blobs/"))
    offline = project(tmp_path / "offline")
    with pytest.raises(bundle.BundleError, match="does not hash to its name"):
        unpack(offline, bad, Console(quiet=True))
    assert snapshot(offline.cache_dir) == {}


def test_a_poisoned_store_is_repaired_by_the_next_good_setup(tmp_path: Path) -> None:
    archive = pack(project(tmp_path / "online"))
    offline = project(tmp_path / "offline")
    unpack(offline, archive, Console(quiet=True))
    good = snapshot(offline.store)
    store = Layout(offline.store)
    victim = next(p for p in store.blobs.iterdir() if p.read_bytes() == b"svc layer")
    victim.write_bytes(b"bad layer")  # the same size: a size check would keep it
    assert snapshot(offline.store) != good
    unpack(offline, archive, Console(quiet=True))
    assert snapshot(offline.store) == good


@pytest.mark.parametrize("second", ["files/resources/models/m.txt", "files/resources/models/M.TXT"])
def test_a_member_twice_or_differing_only_in_case_is_refused(tmp_path: Path, second: str) -> None:
    """A second copy of a name would overwrite the checked first one (or its twin on a case-blind disk)."""
    archive = pack(project(tmp_path / "online"))
    bad = tmp_path / "bad.tar"
    with tarfile.open(archive) as tin, tarfile.open(bad, "w") as tout:
        for m in tin.getmembers():
            tout.addfile(m, tin.extractfile(m))
        extra = tarfile.TarInfo(second)
        extra.size = len(b"other bytes\n")
        tout.addfile(extra, io.BytesIO(b"other bytes\n"))
    offline = project(tmp_path / "offline")
    with pytest.raises(bundle.BundleError, match=f"member '{second}' appears twice \\(or differs only in case\\)"):
        unpack(offline, bad, Console(quiet=True))
    assert snapshot(offline.cache_dir) == {}


def test_setup_twice_leaves_a_capture_in_place_untouched(tmp_path: Path) -> None:
    """A capture whose files are unchanged is not swapped again: builds key the mount on it, and a swap costs."""
    online = project(tmp_path / "online")
    oci.image(oci.new(online.store), "cache-svc", [b"layer"])
    key = online.apt.dir / "debian_bookworm-slim-0123"
    (key / "archives").mkdir(parents=True)
    (key / "archives" / "curl_8.0_amd64.deb").write_bytes(b"a deb\n")
    members = bundle.collect(online.cache_dir, {"apt": online.apt.dir})
    manifest = bundle.Manifest(project=online.name, version="1", platforms=[], services={"svc": {}}, base_images={})
    manifest.files = twopass.hash_members(members)
    archive = online.cache_dir / "build-cache-20260101.tar"
    twopass.write(archive, manifest, members)

    offline = project(tmp_path / "offline")
    files = unpack(offline, archive, Console(quiet=True)).files
    placed = offline.apt.dir / key.name
    assert files == 1 and (placed / "archives" / "curl_8.0_amd64.deb").read_bytes() == b"a deb\n"
    inode = placed.stat().st_ino
    files = unpack(offline, archive, Console(quiet=True)).files
    assert files == 0
    assert placed.stat().st_ino == inode  # the same folder, not a fresh copy swapped in


@pytest.mark.parametrize(("platforms", "folder"), [
    (["linux/arm64"], "linux_arm64"),  # the one it was made for
    ([], "linux_amd64"),  # none named: this machine's
    (["linux/arm64", "linux/amd64"], "linux_amd64"),  # exported on amd64 (a flat capture was the engine's own)
])
def test_an_older_bundles_flat_captures_are_set_up_under_the_platform_it_was_made_for(
        tmp_path: Path, platforms: list[str], folder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Format 3 kept a capture's files straight under its key; builds now mount <key>/<os>_<arch>/.
    Resources stay where they were, and a format-3 delta on top finds the files it omits."""
    from offline_build import packing
    from offline_build.runners import bundle_io

    monkeypatch.setattr(bundle_io, "arch", lambda: "amd64")  # the machine setting it up
    online = project(tmp_path / "online")
    oci.image(oci.new(online.store), "cache-svc", [b"x"])
    (online.cache_dir / "resources" / "models").mkdir(parents=True)
    (online.cache_dir / "resources" / "models" / "m.txt").write_text("weights\n")
    flat = {"apt": {"debian_bookworm-slim/lists/Release": b"lists", "debian_bookworm-slim/archives/jq_1_amd64.deb": b"jq"},
            "pip": {"svc-1/six-1.16.0-py2.py3-none-any.whl": b"six", "svc-1/offline-build-capture.txt": b"pip\n"}}
    folders = {name: tmp_path / "captures" / name for name in flat}
    for name, files in flat.items():
        for rel, data in files.items():
            (folders[name] / rel).parent.mkdir(parents=True, exist_ok=True)
            (folders[name] / rel).write_bytes(data)

    def old(name: str, extends: dict[str, str] | None = None, base: bundle.Manifest | None = None) -> Path:
        manifest = bundle.Manifest(project="demo", version="1", platforms=platforms, services={}, base_images={},
                                   format_version=3, extends=extends or {})
        out = online.cache_dir / name
        members = bundle.collect(online.cache_dir, {**folders, "resources": online.cache_dir / "resources"})
        packing.write_hashed(out, manifest, members, base)
        return out

    archive = old("build-cache-20250101.tar")
    offline = project(tmp_path / "offline")
    offline.path.write_text(offline.path.read_text() + "".join(f"platforms: [{', '.join(platforms)}]\n"
                                                              for _ in platforms[:1]))
    offline = load(offline.path, environ={})
    unpack(offline, archive, Console(quiet=True))
    apt, pip = offline.apt.dir / "debian_bookworm-slim", offline.cache_dir / "captures" / "pip" / "svc-1"
    assert sorted(p.name for p in apt.iterdir()) == [folder]
    assert (apt / folder / "archives" / "jq_1_amd64.deb").read_bytes() == b"jq"
    assert (pip / folder / "six-1.16.0-py2.py3-none-any.whl").read_bytes() == b"six"
    assert PIP.captured(offline, "svc-1") == (len(platforms) <= 1)  # one platform is all a flat capture serves
    assert (offline.cache_dir / "resources" / "models" / "m.txt").read_text() == "weights\n"

    (folders["pip"] / "svc-1" / "docopt-0.6.2-py2.py3-none-any.whl").write_bytes(b"docopt")
    delta = old("build-cache-20250102-delta.tar", {"bundle": archive.name, "manifest_sha256": "0" * 64},
                unpacking.load_manifest(archive)[0])
    with tarfile.open(delta) as tar:
        assert not [n for n in tar.getnames() if n.endswith("six-1.16.0-py2.py3-none-any.whl")]  # taken from here
    unpack(offline, delta, Console(quiet=True))
    assert sorted(p.name for p in (pip / folder).iterdir()) == [
        "docopt-0.6.2-py2.py3-none-any.whl", "offline-build-capture.txt", "six-1.16.0-py2.py3-none-any.whl"]
