"""Non-native platforms end to end on amd64: ARM64 under the harness's qemu emulation (exported, set up and
built offline, rebuilt from its own APT capture), and a platform the machine cannot run refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from offline_build.store import Layout
from tests.integration.test_roundtrip import CLI

pytestmark = pytest.mark.engine

STATE = Path(os.environ.get("OFFLINE_BUILD_ENGINES_DIR", "/var/tmp/offline-build-engines"))


def test_an_s390x_bundle_is_exported_for_s390x_and_refused_by_an_engine_that_cannot_run_it(
        engines: dict[str, str], tmp_path: Path) -> None:
    # A base without a registry: the harness's busybox rootfs, labelled s390x (the
    # harness emulates only arm64). The Dockerfile runs nothing, so nothing needs to run it.
    subprocess.run(["docker", "-H", engines["online"], "import", "--platform", "linux/s390x",
                    str(STATE / "images" / "busybox-v2.rootfs.tar"), "busybox-s390x:local"],
                   check=True, capture_output=True)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox-s390x:local\nCOPY f /f\n")
    (tmp_path / "app" / "f").write_text("f\n")
    (tmp_path / "offline.yaml").write_text("project: zarch\nnetwork: none\nservices:\n  app:\n    context: app\n")
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run([*CLI, "offline.export", "--platform", "linux/s390x", "--host", engines["online"]],
                         cwd=tmp_path, capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    (bundle,) = (tmp_path / "build-cache").glob("build-cache-*.tar")
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["platforms"] == ["linux/s390x"]
    # The base image in the store is the s390x one, and the cache is there.
    store = Layout(tmp_path / "build-cache" / "store")
    tags = store.tags()
    assert {"base-busybox-s390x_local", "cache-app"} <= set(tags)

    def blob(digest: str) -> dict:
        return json.loads((store.blobs / digest.split(":")[1]).read_text())

    base = blob(tags["base-busybox-s390x_local"].digest)
    manifests = [base] if "config" in base else [blob(m["digest"]) for m in base["manifests"]]
    assert {blob(m["config"]["digest"])["architecture"] for m in manifests} == {"s390x"}

    site = tmp_path / "site"
    setup = subprocess.run([*CLI, "offline.setup", "--bundle", str(bundle), "--host", engines["offline"]],
                           cwd=tmp_path, capture_output=True, text=True, env={**env, "CACHE_DIR": str(site)},
                           check=False)
    assert setup.returncode == 1, setup.stdout + setup.stderr
    assert "is for linux/s390x and this engine runs linux/amd64" in setup.stderr
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


ARM64_APP = """\
FROM debian-arm64:bookworm-slim AS build
COPY marker /marker
RUN apt-get update && apt-get install -y --no-install-recommends jq
RUN uname -m > /arch && jq -n '"jq works"' > /jq
FROM debian-arm64:bookworm-slim
COPY --from=build /arch /jq /
COPY app.txt /app.txt
CMD ["sh", "-c", "cat /arch /jq /app.txt"]
"""


def test_an_arm64_project_with_apt_builds_offline_under_emulation_and_rebuilds_from_its_capture(
        engines: dict[str, str], tmp_path: Path) -> None:
    """arm64 only: an APT step and a multi-stage build, exported on amd64, built all cached on the empty air-gapped
    engine under emulation, then a change above the APT step rebuilt there from the bundle's arm64 capture."""
    from tests.integration.conftest import reset
    from tests.integration.test_roundtrip import build_report, cli

    online = tmp_path / "online"
    (online / "app").mkdir(parents=True)
    (online / "app" / "Dockerfile").write_text(ARM64_APP)
    (online / "app" / "marker").write_text("one\n")
    (online / "app" / "app.txt").write_text("arm app\n")
    (online / "offline.yaml").write_text("project: arm\nnetwork: none\nplatforms: [linux/arm64]\n"
                                         "services:\n  app:\n    context: app\n    image: arm/app\n")
    cli(online, engines["online"], "offline.export")
    (archive,) = (online / "build-cache").glob("build-cache-*.tar")
    with tarfile.open(archive) as tar:
        debs = [Path(n).name for n in tar.getnames() if n.endswith(".deb")]
    assert debs and all(d.endswith(("_arm64.deb", "_all.deb")) for d in debs), debs  # the arm64 capture

    reset("offline")
    site = tmp_path / "site"
    shutil.copytree(online, site, ignore=shutil.ignore_patterns("build-cache", "apt-lists"))
    (site / "build-cache").mkdir()
    shutil.copy2(archive, site / "build-cache" / archive.name)
    cli(site, engines["offline"], "offline.setup")
    rows = build_report(cli(site, engines["offline"], "offline.build").stdout, ("app",))
    assert rows["app"][1] == rows["app"][0] and rows["app"][2] == "all cached", rows
    docker = DockerClient(host=engines["offline"])
    ran = docker.run("arm/app:latest", remove=True, networks=["none"], platform="linux/arm64")
    assert ran.split() == ["aarch64", '"jq', 'works"', "arm", "app"], ran

    (site / "app" / "marker").write_text("two\n")  # above the APT step: apt-get must run again, offline
    rebuilt = build_report(cli(site, engines["offline"], "offline.build").stdout, ("app",))
    assert rebuilt["app"][2] == "rebuilt offline", rebuilt
    assert docker.run("arm/app:latest", remove=True, networks=["none"], platform="linux/arm64").split()[0] == "aarch64"
