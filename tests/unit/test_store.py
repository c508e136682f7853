"""The store: one OCI layout, blobs once, merges idempotent, only reachable blobs count."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from offline_build import files, store
from offline_build.store import IMAGE_NAME, Layout, StoreError, misnamed
from tests.unit import oci


def test_merge_keeps_one_copy_of_shared_blobs(tmp_path: Path) -> None:
    store = oci.new(tmp_path / "store")
    a = oci.new(tmp_path / "a")
    b = oci.new(tmp_path / "b")
    oci.image(a, "cache-a", [b"base layer", b"layer a"])
    oci.image(b, "cache-b", [b"base layer", b"layer b"])
    assert store.merge(a) == 4  # 2 layers, config, manifest
    assert store.merge(b) == 3  # the base layer is already there
    assert set(store.tags()) == {"cache-a", "cache-b"}
    assert len(list(store.blobs.iterdir())) == 7


def test_merge_twice_changes_nothing(tmp_path: Path) -> None:
    store = oci.new(tmp_path / "store")
    a = oci.new(tmp_path / "a")
    oci.image(a, "cache-a", [b"x"])
    store.merge(a)
    before = (store.root / "index.json").read_bytes()
    assert store.merge(a) == 0
    assert (store.root / "index.json").read_bytes() == before


def test_retag_by_containerd_image_name(tmp_path: Path) -> None:
    store = oci.new(tmp_path / "store")
    saved = oci.new(tmp_path / "saved")
    oci.image(saved, "bookworm-slim", [b"rootfs"], {IMAGE_NAME: "docker.io/library/debian:bookworm-slim"})
    store.merge(saved, retag={"docker.io/library/debian:bookworm-slim": "base-debian_bookworm-slim"})
    assert set(store.tags()) == {"base-debian_bookworm-slim"}


def test_a_newer_export_replaces_the_tag_and_old_blobs_become_garbage(tmp_path: Path) -> None:
    store = oci.new(tmp_path / "store")
    first = oci.new(tmp_path / "first")
    oci.image(first, "cache-a", [b"old layer"])
    store.merge(first)
    second = oci.new(tmp_path / "second")
    oci.image(second, "cache-a", [b"new layer"])
    store.merge(second)
    garbage = {p.read_bytes() for p in store.garbage()}
    assert b"old layer" in garbage
    assert b"new layer" not in garbage


def test_a_missing_referenced_blob_is_named(tmp_path: Path) -> None:
    saved = oci.new(tmp_path / "saved")
    oci.image(saved, "img", [b"present", b"lost"])
    lost = next(p for p in saved.blobs.iterdir() if p.read_bytes() == b"lost")
    lost.unlink()
    with pytest.raises(StoreError, match="1 blob"):
        saved.reachable()
    store = oci.new(tmp_path / "store")
    with pytest.raises(StoreError, match="1 blob.* referenced but absent"):
        store.merge(saved)
    assert store.tags() == {}  # nothing half-merged into the index


def test_broken_index_is_a_clear_error(tmp_path: Path) -> None:
    layout = oci.new(tmp_path / "l")
    (layout.root / "index.json").write_text("{not json")
    with pytest.raises(StoreError, match="not a valid OCI index"):
        Layout(layout.root).index()


def test_placing_a_blob_never_uses_another_writers_temporary_name(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "store")
    data = b"a layer"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    busy = layout.blob_path(digest).with_name(f".{digest.split(':')[1]}.tmp")
    busy.mkdir(parents=True)  # what a fixed name would collide with: another writer's half-placed blob
    source = tmp_path / "blob"
    source.write_bytes(data)
    assert layout.add_blob(source, digest, move=True)
    assert layout.blob_path(digest).read_bytes() == data and busy.is_dir()


def blob_file(tmp_path: Path, data: bytes, name: str = "blob") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("move", [False, True])
def test_bytes_that_do_not_hash_to_the_name_never_get_it(tmp_path: Path, move: bool) -> None:
    layout = Layout(tmp_path / "store")
    named = "sha256:" + hashlib.sha256(b"the real layer").hexdigest()
    source = blob_file(tmp_path, b"another layer!")  # the same size: only the hash tells
    with pytest.raises(StoreError, match="content does not hash to its name " + named):
        layout.add_blob(source, named, move=move)
    assert not layout.blob_path(named).exists()
    assert source.read_bytes() == b"another layer!"  # refused before the move
    assert [p.name for p in layout.blobs.iterdir()] == []  # no temporary left behind


@pytest.mark.parametrize("move", [False, True])
def test_a_poisoned_blob_of_the_right_size_is_replaced_not_skipped(tmp_path: Path, move: bool) -> None:
    layout = Layout(tmp_path / "store")
    data = b"the real layer"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    layout.blobs.mkdir(parents=True)
    layout.blob_path(digest).write_bytes(b"a poisoned one")  # same size as the real bytes
    layout.add_blob(blob_file(tmp_path, data), digest, move=move)
    assert layout.blob_path(digest).read_bytes() == data


def test_the_callers_hash_is_checked_too(tmp_path: Path) -> None:
    """Setup hands over the hash it took while extracting: a wrong one is refused like wrong bytes."""
    layout = Layout(tmp_path / "store")
    data = b"layer"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with pytest.raises(StoreError, match="content does not hash to its name"):
        layout.add_blob(blob_file(tmp_path, data), digest, move=True, sha256="0" * 64)
    assert layout.add_blob(blob_file(tmp_path, data), digest, move=True, sha256=digest[7:])
    assert layout.blob_path(digest).read_bytes() == data


def test_a_merge_with_a_misnamed_blob_stops_before_the_index(tmp_path: Path) -> None:
    store = oci.new(tmp_path / "store")
    oci.image(store, "cache-old", [b"old"])
    before = (store.root / "index.json").read_bytes()
    saved = oci.new(tmp_path / "saved")
    oci.image(saved, "cache-new", [b"good layer"])
    victim = next(p for p in saved.blobs.iterdir() if p.read_bytes() == b"good layer")
    victim.write_bytes(b"evil layer")
    with pytest.raises(StoreError, match=f"content does not hash to its name sha256:{victim.name}"):
        store.merge(saved, move=True)
    assert (store.root / "index.json").read_bytes() == before
    assert not store.blob_path(f"sha256:{victim.name}").exists()


def test_misnamed_finds_a_bad_blob_by_size_cheaply_and_by_hash_when_asked(tmp_path: Path) -> None:
    store = oci.new(tmp_path / "store")
    oci.image(store, "cache-a", [b"layer one", b"layer two"])
    reach = store.reachable()
    one, two = (next(d for d in reach.values() if store.blob_path(d.digest).read_bytes() == b)
                for b in (b"layer one", b"layer two"))
    assert misnamed(store, reach.values(), rehash=True) == []
    store.blob_path(one.digest).write_bytes(b"layer 1!!")  # same size
    store.blob_path(two.digest).write_bytes(b"short")
    assert misnamed(store, reach.values(), rehash=False) == [two]
    assert sorted(d.digest for d in misnamed(store, reach.values(), rehash=True)) == sorted([one.digest, two.digest])


def test_write_atomic_never_shows_a_reader_half_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the new bytes are written a reader sees the old file whole; a write that fails leaves it whole."""
    path = tmp_path / "state.json"
    path.write_bytes(b"old content")
    seen: list[bytes] = []
    real_fsync = files.os.fsync

    def reader_looks(fd: int) -> None:  # called once the new bytes are written, before the rename
        seen.append(path.read_bytes())
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", reader_looks)
    files.write_atomic(path, b"new content, longer than the old")
    assert seen[0] == b"old content"
    assert path.read_bytes() == b"new content, longer than the old"

    def disk_fails(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files.os, "fsync", disk_fails)
    with pytest.raises(OSError, match="Input/output error"):
        files.write_atomic(path, b"never seen")
    assert path.read_bytes() == b"new content, longer than the old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left behind


def test_write_atomic_writes_through_a_symlink_and_refuses_a_pipe(tmp_path: Path) -> None:
    """``--output link.mk`` writes where the user's link points, and the link stays; ``--output`` a FIFO (or
    /dev/full) is refused, named, and stays what it was (a rename put a plain file in its place)."""
    import os
    import stat

    from offline_build.errors import OfflineBuildError

    (tmp_path / "real.mk").write_text("old")
    link = tmp_path / "link.mk"
    link.symlink_to("real.mk")
    files.write_atomic(link, b"new")
    assert link.is_symlink() and (tmp_path / "real.mk").read_text() == "new"
    pipe = tmp_path / "pipe.mk"
    os.mkfifo(pipe)
    with pytest.raises(OfflineBuildError, match="pipe.mk is a device, pipe or socket, not a file to write"):
        files.write_atomic(pipe, b"never")
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    to_pipe = tmp_path / "stdout"  # /dev/stdout when the output goes into a pipe
    to_pipe.symlink_to(pipe)
    with pytest.raises(OfflineBuildError, match="is a device, pipe or socket"):
        files.write_atomic(to_pipe, b"never")
    dangling = tmp_path / "dangling.mk"
    dangling.symlink_to(tmp_path / "not" / "yet" / "out.mk")
    with pytest.raises(FileNotFoundError):  # named at the boundary; the link's folders are not made
        files.write_atomic(dangling, b"never")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.mk", "link.mk", "pipe.mk", "real.mk", "stdout"]
