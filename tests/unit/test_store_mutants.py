"""The store's promises, one per test, each written so that a mutation of store.py that breaks it fails.

Found by a mutation-testing run (mutmut) over store.py: every test here killed
mutants the rest of the suite let live. They assert what a user of the store
sees (what is reachable, what the index says, what an error tells), not how.
"""

from __future__ import annotations

import hashlib
import json
import stat
import tempfile
from pathlib import Path

import pytest

from offline_build import files
from offline_build.store import IMAGE_NAME, REF_NAME, Descriptor, Layout, StoreError, misnamed
from tests.unit import oci

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_bytes(layout: Layout, tag: str) -> set[bytes]:
    """The bytes of every blob reachable from *tag*."""
    found = layout.reachable([layout.tags()[tag]])
    return {layout.blob_path(d).read_bytes() for d in found}


def test_every_blob_of_two_images_sharing_a_layer_is_reachable(tmp_path: Path) -> None:
    """A shared layer met the second time is skipped, not the end of the walk: nothing after it is lost."""
    layout = oci.new(tmp_path / "store")
    oci.image(layout, "cache-a", [b"shared base", b"layer a"])
    oci.image(layout, "cache-b", [b"shared base", b"layer b"])
    every = {p.read_bytes() for p in layout.blobs.iterdir()}
    assert {layout.blob_path(d).read_bytes() for d in layout.reachable()} == every
    assert len(every) == 7  # 3 layers, 2 configs, 2 manifests


def test_reachable_from_given_roots_is_only_what_they_reach(tmp_path: Path) -> None:
    layout = oci.new(tmp_path / "store")
    oci.image(layout, "cache-a", [b"layer a"])
    oci.image(layout, "cache-b", [b"layer b"])
    assert b"layer a" in blob_bytes(layout, "cache-a")
    assert b"layer b" not in blob_bytes(layout, "cache-a")


def test_an_image_index_reaches_its_platform_manifests_their_layers_and_referrers(tmp_path: Path) -> None:
    """A multi-platform index, an attestation's ``subject`` and an artifact's ``blobs`` are all walked."""
    layout = oci.new(tmp_path / "store")
    amd = oci.image(layout, "amd", [b"amd64 layer"])
    arm = oci.image(layout, "arm", [b"arm64 layer"])
    artifact = json.dumps({"mediaType": MANIFEST, "blobs": [
        {"mediaType": "application/octet-stream", "digest": oci.put(layout, b"sbom"), "size": 4}]}).encode()
    referrer = json.dumps({"mediaType": MANIFEST, "layers": [], "subject": {
        "mediaType": MANIFEST, "digest": oci.put(layout, artifact), "size": len(artifact)}}).encode()
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {**amd.to_json(), "annotations": {}, "platform": {"os": "linux", "architecture": "amd64"}},
        {**arm.to_json(), "annotations": {}, "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": MANIFEST, "digest": oci.put(layout, referrer), "size": len(referrer)}]}).encode()
    top = Descriptor(INDEX, oci.put(layout, index), len(index), {REF_NAME: "multi"})
    layout.write_index([top])  # only the index is tagged now
    reached = {layout.blob_path(d).read_bytes() for d in layout.reachable()}
    assert {b"amd64 layer", b"arm64 layer", b"sbom", artifact, referrer} <= reached


def test_absent_blobs_are_counted_and_the_first_three_named(tmp_path: Path) -> None:
    layout = oci.new(tmp_path / "store")
    oci.image(layout, "cache-a", [b"one", b"two", b"three", b"four"])
    lost = sorted(digest_of(b) for b in (b"one", b"two", b"three", b"four"))
    for d in lost:
        layout.blob_path(d).unlink()
    with pytest.raises(StoreError) as info:
        layout.reachable()
    named = info.value.message.rsplit(": ", 1)[1].split(", ")
    assert info.value.message.startswith(f"4 blob(s) referenced but absent in {layout.root}: ")
    assert len(named) == 3 and {len(n) for n in named} == {19}
    assert set(named) <= {d[:19] for d in lost}
    assert info.value.hint == "re-export on the online machine: the saved image or cache is incomplete"


def test_only_sha256_digests_of_64_hex_digits_name_a_blob(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    for bad in ("sha512:" + "a" * 64, "sha256:abc", "a" * 64):
        with pytest.raises(StoreError) as info:
            layout.blob_path(bad)
        assert str(info.value) == f"unsupported digest {bad!r}\n  fix: only sha256 digests are supported"


def test_an_index_without_manifests_is_empty_and_a_broken_one_says_how_to_fix_it(tmp_path: Path) -> None:
    layout = oci.new(tmp_path / "store")
    (layout.root / "index.json").write_text('{"schemaVersion": 2}')
    assert layout.index() == [] and layout.tags() == {}
    (layout.root / "index.json").write_text('{"manifests": [{"mediaType": "x"}]}')  # no digest
    with pytest.raises(StoreError) as info:
        layout.index()
    assert info.value.message.startswith(f"{layout.root / 'index.json'}: not a valid OCI index (")
    assert info.value.hint == "re-run offline.setup (or offline.export on the online machine)"


def test_the_index_is_an_oci_index_sorted_by_name_and_rewritten_only_on_change(tmp_path: Path) -> None:
    """BuildKit and ``docker load`` read it as an OCI layout; a stable order keeps unchanged stores unchanged."""
    layout = Layout(tmp_path / "new" / "store")  # a fresh, nested folder: write_index makes the layout
    a, b = (Descriptor(MANIFEST, digest_of(x), 1, {REF_NAME: n}) for x, n in ((b"2", "cache-a"), (b"1", "cache-b")))
    untagged = Descriptor(MANIFEST, digest_of(b"0"), 1, {})
    assert layout.write_index([b, untagged, a]) is True
    assert json.loads((layout.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    doc = json.loads((layout.root / "index.json").read_text())
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == INDEX
    assert [m.get("annotations", {}).get(REF_NAME) for m in doc["manifests"]] == [None, "cache-a", "cache-b"]
    assert layout.blobs.is_dir()
    assert layout.write_index([a, untagged, b]) is False


def test_a_platform_and_other_fields_of_an_index_entry_survive_a_merge_and_a_retag(tmp_path: Path) -> None:
    saved = oci.new(tmp_path / "saved")
    img = oci.image(saved, "bookworm", [b"rootfs"], {IMAGE_NAME: "docker.io/library/debian:bookworm"})
    other = oci.image(saved, "other", [b"other rootfs"])
    platform = {"architecture": "arm64", "os": "linux"}
    saved.write_index([Descriptor(img.media_type, img.digest, img.size, img.annotations, platform), other])
    layout = oci.new(tmp_path / "store")
    layout.merge(saved, retag={"docker.io/library/debian:bookworm": "base-debian_bookworm"})
    tags = layout.tags()
    assert set(tags) == {"base-debian_bookworm", "other"}
    entry = tags["base-debian_bookworm"]
    assert (entry.media_type, entry.digest, entry.size, entry.platform) == (img.media_type, img.digest, img.size,
                                                                            platform)
    assert tags["other"] == other
    again = json.loads((layout.root / "index.json").read_text())["manifests"]
    assert [m["platform"] for m in again if m.get("platform")] == [platform]


def test_a_merge_that_moves_leaves_the_source_blobs_gone(tmp_path: Path) -> None:
    layout = oci.new(tmp_path / "store")
    saved = oci.new(tmp_path / "saved")
    oci.image(saved, "cache-a", [b"layer"])
    assert layout.merge(saved, move=True) == 3
    assert list(saved.blobs.iterdir()) == [] and set(layout.tags()) == {"cache-a"}


def test_adding_a_blob_copies_by_default_and_keeps_a_good_one_in_place(tmp_path: Path) -> None:
    """The default leaves the caller's file; a target that hashes right is not rewritten (no second write)."""
    layout = Layout(tmp_path / "store")
    source = tmp_path / "blob"
    source.write_bytes(b"a layer")
    digest = digest_of(b"a layer")
    assert layout.add_blob(source, digest) is True
    assert source.read_bytes() == b"a layer"
    inode = layout.blob_path(digest).stat().st_ino
    assert layout.add_blob(source, digest) is False
    assert layout.blob_path(digest).stat().st_ino == inode


def test_a_refused_blob_names_its_file_the_digest_and_the_fix(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    source = tmp_path / "blob"
    source.write_bytes(b"other bytes")
    named = digest_of(b"the real bytes")
    with pytest.raises(StoreError) as info:
        layout.add_blob(source, named)
    assert str(info.value) == (f"{source}: content does not hash to its name {named} "
                               f"(its sha256 is {digest_of(b'other bytes')[7:]})\n"
                               "  fix: the bytes are damaged or were replaced: take them again from their source "
                               "(export again, or copy the bundle again)")


def test_read_json_says_which_blob_is_missing_or_not_json(tmp_path: Path) -> None:
    layout = oci.new(tmp_path / "store")
    absent = digest_of(b"never stored")
    with pytest.raises(StoreError) as info:
        layout.read_json(absent)
    assert info.value.message == f"blob {absent} is missing from {layout.root}"
    garbage = oci.put(layout, b"not json")
    with pytest.raises(StoreError, match=rf"^blob {garbage} in {layout.root} is not JSON \("):
        layout.read_json(garbage)


def test_misnamed_looks_past_a_missing_blob(tmp_path: Path) -> None:
    layout = oci.new(tmp_path / "store")
    oci.image(layout, "cache-a", [b"gone", b"bad!"])
    gone, bad = (next(d for d in layout.reachable().values() if d.digest == digest_of(b)) for b in (b"gone", b"bad!"))
    layout.blob_path(gone.digest).unlink()
    layout.blob_path(bad.digest).write_bytes(b"evil")
    assert misnamed(layout, [gone, bad], rehash=True) == [bad]


def test_files_the_tool_writes_are_plain_readable_files_in_new_folders(tmp_path: Path) -> None:
    """State files and generated Dockerfiles are build context: their mode is part of BuildKit's cache key."""
    path = tmp_path / "a" / "b" / "state.json"
    files.write_atomic(path, b"{}")
    assert path.read_bytes() == b"{}" and stat.S_IMODE(path.stat().st_mode) == 0o644
    folder = tmp_path / "x" / "y" / "cache"
    files.create_ignored(folder)
    assert (folder / ".gitignore").read_text() == "*\n"


def test_a_write_never_depends_on_the_systems_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                ) -> None:
    """The temporary file sits beside its target: one file system (so the rename is atomic), whatever TMPDIR is."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no such folder"))
    files.write_atomic(tmp_path / "state.json", b"new")
    assert (tmp_path / "state.json").read_bytes() == b"new"


@pytest.mark.parametrize("text", ["[1, 2]", '"index"', "3"])
def test_an_index_that_is_json_but_not_an_object_is_a_store_error(tmp_path: Path, text: str) -> None:
    layout = Layout(tmp_path / "store")
    layout.blobs.mkdir(parents=True)
    (layout.root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout.root / "index.json").write_text(text)
    with pytest.raises(StoreError, match="index.json: not a valid OCI index"):
        layout.index()


def test_a_digest_must_be_64_hex_digits_not_merely_64_characters(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    with pytest.raises(StoreError, match="unsupported digest"):
        layout.blob_path("sha256:" + "../" * 21 + "x")
