"""The bake file offline-build writes is one buildx bake accepts, with the same targets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_roundtrip import copy_demo

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
