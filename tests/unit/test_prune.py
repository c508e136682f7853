"""offline.prune: drops exactly the blobs no index entry reaches; --dry-run lists them and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from offline_build import prune
from offline_build.store import Layout, StoreError
from tests.unit import oci
from tests.unit.helpers import project, run, snapshot


def store_with_garbage(root: Path):  # noqa: ANN201
    proj = project(root)
    store = oci.new(proj.store)
    oci.image(store, "cache-svc", [b"old layer", b"shared"])
    oci.image(store, "cache-svc", [b"new layer!", b"shared"])  # the tag moves on; the old entry's blobs stay
    return proj, store


def test_the_plan_names_each_unreachable_blob_with_its_bytes_and_dry_run_drops_nothing(tmp_path: Path) -> None:
    proj, store = store_with_garbage(tmp_path)
    garbage = {p.name: p.stat().st_size for p in store.garbage()}
    assert len(garbage) == 3  # the old layer, the old config, the old manifest
    (step,) = prune.prune_plan(proj).steps
    assert dict(step.blobs) == garbage  # type: ignore[attr-defined]
    before = snapshot(proj.cache_dir)
    console = Console(record=True, width=300)
    done = prune.prune(proj, console, dry_run=True)
    assert (done.blobs, done.bytes) == (3, sum(garbage.values()))
    text = console.export_text()
    for name, size in garbage.items():
        assert f"blobs/sha256/{name} ({size} bytes)" in text
    assert f"# 3 unreachable blob(s), {sum(garbage.values())} bytes, would be dropped" in text
    assert snapshot(proj.cache_dir) == before


def test_prune_drops_the_unreachable_and_keeps_every_reachable_blob(tmp_path: Path) -> None:
    proj, store = store_with_garbage(tmp_path)
    reachable = {d.hex for d in store.reachable().values()}
    garbage = {p.name for p in store.garbage()}
    done = prune.prune(proj, Console(quiet=True))
    assert done.blobs == 3
    assert {p.name for p in Layout(proj.store).blobs.iterdir()} == reachable
    assert not garbage & {p.name for p in store.blobs.iterdir()}
    assert store.reachable()  # the index still names complete content
    assert prune.prune(proj, Console(quiet=True)).blobs == 0


def test_without_a_store_prune_is_one_message(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="nothing to prune"):
        prune.prune_plan(project(tmp_path))


def test_a_mistyped_cache_dir_is_refused_and_not_made(tmp_path: Path) -> None:
    proj = project(tmp_path / "p")
    refused = run(["offline.prune", "--cache-dir", str(tmp_path / "typo" / "deep")], proj.root)
    assert refused.returncode == 1 and "nothing to prune" in refused.stderr, refused.stderr
    assert not (tmp_path / "typo").exists()  # the lock made the folder, its .lock and .gitignore


def test_the_task_lists_and_drops_without_an_engine(tmp_path: Path) -> None:
    proj, store = store_with_garbage(tmp_path)
    listed = run(["offline.prune", "--dry-run"], proj.root)
    assert listed.returncode == 0, listed.stderr
    assert "3 unreachable blob(s)" in listed.stdout and len(store.garbage()) == 3
    dropped = run(["offline.prune"], proj.root)
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped 3 unreachable blob(s)" in dropped.stdout and store.garbage() == []
    empty = project(tmp_path / "empty")
    refused = run(["offline.prune"], empty.root)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "nothing to prune" in refused.stderr and "fix:" in refused.stderr
