"""The bake file offline-build writes is one buildx bake accepts, with the same targets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import copy_demo, reset

pytestmark = pytest.mark.engine


def test_bake_print_accepts_the_file_and_its_targets_match(engines: dict[str, str], tmp_path: Path) -> None:
    project = copy_demo(tmp_path / "demo")
    subprocess.run([sys.executable, "-m", "offline_build.cli", "offline.bake"], cwd=project, check=True,
                   capture_output=True)
    written = json.loads((project / "docker-bake.json").read_text())
    env = {**os.environ, "DOCKER_HOST": engines["online"]}
    printed = subprocess.run(["docker", "buildx", "bake", "-f", "docker-bake.json", "--print"], cwd=project,
                             capture_output=True, text=True, env=env, check=True)
    resolved = json.loads(printed.stdout)
    assert set(resolved["target"]) == {"backend", "worker", "web"} == set(written["target"])
    backend = resolved["target"]["backend"]
    assert backend["dockerfile"].endswith("variants/backend/Dockerfile.offline")
    assert Path(backend["dockerfile"]).is_file()
    assert "apt-debian_bookworm-slim" in backend["contexts"]
    assert backend["tags"] == ["demo/backend:1.0.0"]
    assert resolved["target"]["worker"]["args"] == {"GREETING": "hello from the worker"}
    store = project / "build-cache" / "store"
    assert resolved["target"]["web"]["cache-from"] == [f"type=local,src={store},tag=cache-web"]


def test_a_bake_build_in_the_air_gap_takes_everything_from_the_store(
        engines: dict[str, str], tmp_path: Path) -> None:
    # No RUN step: buildx 0.13's bake ignores a target's network (see
    # bake.network_warning), and this harness's engines have no default one.
    online_dir, site_dir = tmp_path / "online", tmp_path / "site"
    for root in (online_dir, site_dir):
        (root / "app").mkdir(parents=True)
        (root / "app" / "Dockerfile").write_text("FROM busybox:local\nCOPY f /f\nCOPY g /g\n")
        (root / "app" / "f").write_text("f\n")
        (root / "app" / "g").write_text("g\n")
        (root / "offline.yaml").write_text("project: bk\nservices:\n  app:\n    context: app\n")
    cli = [sys.executable, "-m", "offline_build.cli"]
    subprocess.run([*cli, "offline.export", "--host", engines["online"]], cwd=online_dir, check=True,
                   capture_output=True)
    reset("offline")
    (bundle,) = (online_dir / "build-cache").glob("build-cache-*.tar")
    subprocess.run([*cli, "offline.setup", "--bundle", str(bundle), "--host", engines["offline"]], cwd=site_dir,
                   check=True, capture_output=True)
    subprocess.run([*cli, "offline.bake"], cwd=site_dir, check=True, capture_output=True)
    env = {**os.environ, "DOCKER_HOST": engines["offline"]}
    out = subprocess.run(["docker", "buildx", "bake", "-f", "docker-bake.json", "--load", "--progress", "plain"],
                         cwd=site_dir, capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    steps = [line for line in out.stderr.splitlines() if "/3] COPY " in line]
    cached = [line for line in out.stderr.splitlines() if line.endswith(" CACHED")]
    assert len(steps) == 2 and len(cached) == 2, out.stderr
    assert "OCI load from client" in out.stderr  # the base came from the store, never from a registry
    images = subprocess.run(["docker", "-H", engines["offline"], "image", "ls", "--format", "{{.Repository}}"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert "app" in images
