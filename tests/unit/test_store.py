"""The store: one OCI layout, blobs once, merges idempotent, only reachable blobs count."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from offline_build.store import IMAGE_NAME, Layout, StoreError
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
    with pytest.raises(StoreError):
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
