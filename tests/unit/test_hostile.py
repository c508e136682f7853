"""Hostile bundles and faults that need no engine: refused, with the store left as it was."""

from __future__ import annotations

import fcntl
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from rich.console import Console

from offline_build import bundle, unpacking
from offline_build.config import load
from offline_build.diagnose import verify_archive
from offline_build.errors import ConfigError, OfflineBuildError
from offline_build.setup import unpack
from offline_build.state import lock
from tests.unit import oci, twopass
from tests.unit.helpers import pack, project, rewrite, snapshot


def with_member(kind: str):  # noqa: ANN201
    """Turn the resource file into a hardlink, FIFO or device member."""
    def change(m: tarfile.TarInfo, data: bytes):  # noqa: ANN202
        if m.name.startswith("files/"):
            m.type = {"hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "device": tarfile.CHRTYPE}[kind]
            m.linkname = "/etc/shadow" if kind == "hardlink" else ""
            return m, b""
        return m, data
    return change


@pytest.mark.parametrize("kind", ["hardlink", "fifo", "device"])
def test_links_fifos_and_devices_are_refused(tmp_path: Path, kind: str) -> None:
    archive = pack(project(tmp_path / "online"))
    bad = tmp_path / "bad.tar"
    rewrite(archive, bad, with_member(kind))
    offline = project(tmp_path / "offline")
    with pytest.raises(bundle.BundleError, match="is not a regular file"):
        unpack(offline, bad, Console(quiet=True))
    assert not offline.store.exists()


def test_a_flood_of_tiny_members_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unpacking, "MAX_MEMBERS", 50)
    flood = tmp_path / "flood.tar"
    with tarfile.open(flood, "w") as tar:
        for i in range(60):
            info = tarfile.TarInfo(f"files/resources/{i}")
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(bundle.BundleError, match="more than 50 members"):
        unpack(project(tmp_path / "offline"), flood, Console(quiet=True))


@pytest.mark.parametrize("reader", ["setup", "load_manifest", "diagnose"])
def test_a_flood_is_refused_before_the_rest_of_its_headers_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    reader: str) -> None:
    monkeypatch.setattr(unpacking, "MAX_MEMBERS", 5)
    flood = tmp_path / "flood.tar"
    with tarfile.open(flood, "w") as tar:
        for i in range(100):
            tar.addfile(tarfile.TarInfo(f"files/resources/{i}"), io.BytesIO(b""))
    headers: list[int] = []
    real_next = tarfile.TarFile.next

    def counting(self: tarfile.TarFile) -> tarfile.TarInfo | None:
        headers.append(1)
        return real_next(self)

    monkeypatch.setattr(tarfile.TarFile, "next", counting)
    read = {"setup": lambda: unpack(project(tmp_path / "offline"), flood, Console(quiet=True)),
            "load_manifest": lambda: unpacking.load_manifest(flood),
            "diagnose": lambda: verify_archive(flood)}[reader]
    with pytest.raises(bundle.BundleError, match="more than 5 members"):
        read()
    # Opening reads a few (r:* tries each compression); parsing every header would be over 100.
    assert len(headers) < 20


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_bundle_larger_than_the_free_space_is_refused_before_extracting(tmp_path: Path) -> None:
    online = project(tmp_path / "online")
    (online.cache_dir / "resources").mkdir(parents=True)
    (online.cache_dir / "resources" / "big.bin").write_bytes(os.urandom(3 << 20))
    archive = pack(online)
    offline = project(tmp_path / "offline")
    offline.cache_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(offline.cache_dir)], check=True)
    try:
        before = snapshot(offline.cache_dir)
        with pytest.raises(bundle.BundleError, match=r"needs \d+ MiB to set up .* MiB free"):
            unpack(offline, archive, Console(quiet=True))
        assert snapshot(offline.cache_dir) == before
        assert list((offline.cache_dir / ".work").iterdir()) == []
    finally:
        subprocess.run(["umount", str(offline.cache_dir)], check=True)


def test_two_setups_at_once_the_second_is_told(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with (cache / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(OfflineBuildError, match="another offline-build is working on"):
            with lock(cache):
                pass
    with lock(cache):
        pass  # free again once the first is done


def test_ctrl_c_during_setup_leaves_the_store_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = pack(project(tmp_path / "online"))
    offline = project(tmp_path / "offline")
    oci.image(oci.new(offline.store), "cache-other", [b"already here"])
    before = snapshot(offline.cache_dir)
    real = unpacking.extract_verified

    def interrupted(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(unpacking, "extract_verified", interrupted)
    with pytest.raises(KeyboardInterrupt):
        unpack(offline, archive, Console(quiet=True))
    assert snapshot(offline.cache_dir) == before
    assert list((offline.cache_dir / ".work").iterdir()) == []


@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "DB_PASSWORD", "aws_secret_access_key", "NPM_API_KEY"])
def test_secret_looking_build_args_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (tmp_path / "offline.yaml").write_text(
        f"project: p\nservices:\n  svc:\n    context: svc\n    build_args:\n      {name}: x\n")
    with pytest.raises(ConfigError, match="looks like a secret") as info:
        load(tmp_path / "offline.yaml", environ={})
    assert str(info.value).startswith(f"{tmp_path / 'offline.yaml'}:6:7:")
    assert "RUN --mount=type=secret" in str(info.value)


def test_docker_credentials_cannot_be_a_resource(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text('{"auths": {"x": {"auth": "c2VjcmV0"}}}')
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    for source in (str(home / ".docker" / "config.json"), str(home)):
        (tmp_path / "offline.yaml").write_text(
            f"project: p\nservices:\n  svc:\n    context: svc\nresources:\n  - name: r\n    path: {source}\n")
        with pytest.raises(ConfigError, match="holds Docker or cloud credentials"):
            load(tmp_path / "offline.yaml", environ={})


def test_nothing_outside_the_store_and_files_enters_a_bundle(tmp_path: Path) -> None:
    proj = project(tmp_path / "p")
    pack(proj)
    (proj.cache_dir / "engines.json").write_text("{}")
    (proj.cache_dir / "bundle.json").write_text("{}")
    names = {name for name, _ in bundle.collect(proj.cache_dir)}
    assert {"oci-layout", "index.json", "files/resources/models/m.txt"} <= names  # what pack() made is looked at
    assert any(n.startswith("blobs/sha256/") for n in names)
    assert all(n in ("oci-layout", "index.json") or n.startswith(("blobs/sha256/", "files/")) for n in names)


def test_a_bundle_for_another_platform_is_refused(tmp_path: Path) -> None:
    online = project(tmp_path / "online")
    store = oci.new(online.store)
    oci.image(store, "cache-svc", [b"x"])
    members = bundle.collect(online.cache_dir)
    manifest = bundle.Manifest(project="demo", version="1", platforms=["linux/amd64"], services={}, base_images={})
    manifest.files = twopass.hash_members(members)
    archive = online.cache_dir / "build-cache-20260101.tar"
    twopass.write(archive, manifest, members)
    offline = project(tmp_path / "offline")
    (offline.path).write_text(offline.path.read_text() + "platforms: [linux/arm64]\n")
    arm = load(offline.path, environ={})
    with pytest.raises(bundle.BundleError, match="was built for linux/amd64, not linux/arm64"):
        unpack(arm, archive, Console(quiet=True))


@pytest.mark.parametrize(("platforms", "refused"), [
    (["linux/amd64", "linux/arm64"], False),  # an amd64 site of a two-platform bundle: it builds its own
    (["linux/arm64", "linux/s390x"], False),  # arm64 under emulation
    (["linux/s390x"], True),
    (["linux/s390x", "linux/riscv64"], True),
])
def test_a_bundle_is_set_up_when_the_engine_runs_one_of_its_platforms(
        tmp_path: Path, platforms: list[str], refused: bool) -> None:
    online = project(tmp_path / "online")
    oci.image(oci.new(online.store), "cache-svc", [b"x"])
    members = bundle.collect(online.cache_dir)
    manifest = bundle.Manifest(project="demo", version="1", platforms=platforms, services={}, base_images={})
    manifest.files = twopass.hash_members(members)
    archive = online.cache_dir / "build-cache-20260101.tar"
    twopass.write(archive, manifest, members)
    offline = project(tmp_path / "offline")
    engine = lambda: ("linux/amd64", "linux/amd64/v2", "linux/arm64")  # noqa: E731 (what buildx lists)
    if refused:
        with pytest.raises(bundle.BundleError, match=f"is for {', '.join(platforms)} and this engine runs linux/amd64"):
            unpack(offline, archive, Console(quiet=True), engine)
        assert not offline.store.exists()
    else:
        assert unpack(offline, archive, Console(quiet=True), engine).manifest.platforms == platforms


def test_without_the_stdlibs_data_filter_setup_works_and_the_pre_pass_still_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python before 3.10.12 / 3.11.4 has no tarfile.data_filter: our own checks must stand alone."""
    monkeypatch.delattr(tarfile, "data_filter")
    archive = pack(project(tmp_path / "online"))
    offline = project(tmp_path / "offline")
    unpack(offline, archive, Console(quiet=True))
    assert (offline.cache_dir / "resources" / "models" / "m.txt").read_text() == "weights\n"
    bad = tmp_path / "bad.tar"

    def absolute(m: tarfile.TarInfo, data: bytes):  # noqa: ANN202
        if m.name.startswith("files/resources"):
            m.name = "/etc/evil"
        return m, data

    rewrite(archive, bad, absolute)
    with pytest.raises(bundle.BundleError, match="member '/etc/evil' has an unsafe path"):
        unpack(project(tmp_path / "other"), bad, Console(quiet=True))
