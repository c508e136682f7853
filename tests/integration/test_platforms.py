"""A non-native platform end to end on amd64: exported, recorded, and refused where it cannot run."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from offline_build.store import Layout
from tests.integration.test_roundtrip import CLI

pytestmark = pytest.mark.engine

STATE = Path(os.environ.get("OFFLINE_BUILD_ENGINES_DIR", "/var/tmp/offline-build-engines"))


def test_an_arm64_bundle_is_exported_for_arm64_and_refused_by_an_amd64_engine(
        engines: dict[str, str], tmp_path: Path) -> None:
    # An arm64 base without a registry: the harness's busybox rootfs, labelled
    # arm64. The Dockerfile runs nothing, so no emulation is needed to export.
    subprocess.run(["docker", "-H", engines["online"], "import", "--platform", "linux/arm64",
                    str(STATE / "images" / "busybox-v2.rootfs.tar"), "busybox-arm64:local"],
                   check=True, capture_output=True)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox-arm64:local\nCOPY f /f\n")
    (tmp_path / "app" / "f").write_text("f\n")
    (tmp_path / "offline.yaml").write_text("project: arm\nnetwork: none\nservices:\n  app:\n    context: app\n")
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run([*CLI, "offline.export", "--platform", "linux/arm64", "--host", engines["online"]],
                         cwd=tmp_path, capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    (bundle,) = (tmp_path / "build-cache").glob("build-cache-*.tar")
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["platforms"] == ["linux/arm64"]
    # The base image in the store is the arm64 one, and the cache is there.
    store = Layout(tmp_path / "build-cache" / "store")
    tags = store.tags()
    assert {"base-busybox-arm64_local", "cache-app"} <= set(tags)

    def blob(digest: str) -> dict:
        return json.loads((store.blobs / digest.split(":")[1]).read_text())

    base = blob(tags["base-busybox-arm64_local"].digest)
    manifests = [base] if "config" in base else [blob(m["digest"]) for m in base["manifests"]]
    assert {blob(m["config"]["digest"])["architecture"] for m in manifests} == {"arm64"}

    site = tmp_path / "site"
    setup = subprocess.run([*CLI, "offline.setup", "--bundle", str(bundle), "--host", engines["offline"]],
                           cwd=tmp_path, capture_output=True, text=True, env={**env, "CACHE_DIR": str(site)},
                           check=False)
    assert setup.returncode == 1, setup.stdout + setup.stderr
    assert "is for linux/arm64 and this engine runs linux/amd64" in setup.stderr
    assert "export again with --platform linux/amd64" in setup.stderr and "Traceback" not in setup.stderr
    assert not (site / "store").exists() and not (site / "bundle.json").exists()  # nothing written


def test_a_base_image_without_a_wanted_platform_stops_the_export_before_any_build(
        engines: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:local\nCOPY f /f\n")
    (tmp_path / "app" / "f").write_text("f\n")
    (tmp_path / "offline.yaml").write_text("project: two\nnetwork: none\nservices:\n  app:\n    context: app\n")
    out = subprocess.run([*CLI, "offline.export", "--platform", "linux/amd64,linux/arm64", "--host", engines["online"]],
                         cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
                         check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "base image docker.io/library/busybox:local has linux/amd64 in this engine, not linux/arm64" in out.stderr
    assert "docker pull --platform linux/arm64" in out.stderr and "Traceback" not in out.stderr
    assert "==> build app" not in out.stdout  # stopped at the save, before any build
    assert not list((tmp_path / "build-cache").glob("build-cache-*.tar"))
