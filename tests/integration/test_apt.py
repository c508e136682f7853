"""APT without a network, and the classic fallback, on the harness's real engines."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from python_on_whales import DockerClient
from rich.console import Console

from offline_build import build as building
from offline_build.config import load
from offline_build.engine import probe_engine
from offline_build.executor import Executor
from offline_build.steps import OfflineBuild, Plan
from tests.integration.conftest import Demo
from tests.integration.harness import HARNESS, RetryWatcher, carry, cli, reset

pytestmark = pytest.mark.engine


def restored(tmp_path: Path, demo: Demo, host: str) -> Path:
    project = carry(demo.bundle, tmp_path / "demo")
    cli(project, host, "offline.setup")
    return project


def build(project: Path, host: str, service: str) -> building.BuildOutcome:
    (outcome,) = building.build(load(project / "offline.yaml", environ={}), [service],
                                DockerClient(host=host), Console(quiet=True), fallback=False)
    return outcome


def apt_step(outcome: building.BuildOutcome) -> list[str]:
    return [name for name in outcome.ran if "apt-get install" in name]


def test_the_capture_travels_in_the_bundle(demo: Demo) -> None:
    with tarfile.open(demo.bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    paths = [f["path"] for f in manifest["files"]]
    assert any(p.startswith("files/apt/debian_bookworm-slim/linux_amd64/archives/jq_") and p.endswith(".deb") for p in paths)
    assert any(p.startswith("files/apt/debian_bookworm-slim/linux_amd64/lists/") and "Packages" in p for p in paths)
    assert manifest["network"] == "none"
    assert "demo-debian_bookworm-slim-apt:1.0.0" in manifest["base_images"]


def test_a_change_after_the_apt_step_keeps_it_cached(engines: dict[str, str], demo: Demo,
                                                      tmp_path: Path) -> None:
    reset("offline")
    host = engines["offline"]
    project = restored(tmp_path, demo, host)
    config = project / "services" / "backend" / "config.json"
    config.write_text('{"name": "changed offline"}\n')
    outcome = build(project, host, "backend")
    assert apt_step(outcome) == []
    assert len(outcome.ran) == 1 and outcome.ran[0].endswith("COPY config.json /etc/backend/config.json")
    out = DockerClient(host=host).run("demo/backend:1.0.0", remove=True, networks=["none"])
    assert out.strip() == '"changed offline"'


def test_a_change_before_the_apt_step_reinstalls_from_the_captured_debs(
        engines: dict[str, str], demo: Demo, tmp_path: Path) -> None:
    host = engines["offline"]
    project = restored(tmp_path, demo, host)
    (project / "services" / "backend" / "before.txt").write_text("before v2\n")
    outcome = build(project, host, "backend")
    assert len(apt_step(outcome)) == 1, outcome.ran  # it ran, with no network, and succeeded
    docker = DockerClient(host=host)
    version = docker.run("demo/backend:1.0.0", ["jq", "--version"], remove=True, networks=["none"])
    assert version.strip().startswith("jq-1.")


def test_the_old_engine_falls_back_to_the_classic_builder(engines: dict[str, str], demo: Demo,
                                                           tmp_path: Path) -> None:
    reset("old")
    host = engines["old"]
    project = restored(tmp_path, demo, host)
    out = cli(project, host, "offline.build")
    assert "fallback: backend: this engine's BuildKit has no named build contexts; building with the classic" \
           " builder" in " ".join(out.stdout.split())
    docker = DockerClient(host=host)
    assert docker.run("demo/backend:1.0.0", remove=True, networks=["none"]).strip() == '"demo backend"'
    assert docker.run("demo/backend:1.0.0", ["jq", "--version"], remove=True, networks=["none"]).startswith("jq-1.")
    assert docker.run("demo/web:1.0.0", remove=True, networks=["none"]).strip() == "web: serving 18 bytes"


def test_the_legacy_engine_builds_the_apt_service_with_buildkit(engines: dict[str, str], demo: Demo,
                                                                 tmp_path: Path) -> None:
    reset("legacy")
    host = engines["legacy"]
    project = restored(tmp_path, demo, host)
    outcome = build(project, host, "backend")
    assert outcome.builder == "buildkit" and outcome.status == "all cached", outcome


def test_a_transient_engine_failure_is_retried(engines: dict[str, str], demo: Demo, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine is down when the build starts and back before the retry: the build succeeds."""
    host = engines["offline"]
    project_dir = restored(tmp_path, demo, host)
    project = load(project_dir / "offline.yaml", environ={})
    docker = DockerClient(host=host)
    caps = probe_engine(docker, project)
    plan = building.plan_offline_builds(project, [project.service("web")], caps)
    build_steps = tuple(s.buildkit for s in plan.steps if isinstance(s, OfflineBuild) and s.buildkit)
    subprocess.run([str(HARNESS), "down", "offline"], check=True, capture_output=True)
    restarts: list[str] = []

    def restart(reason: str) -> None:
        restarts.append(reason)
        subprocess.run([str(HARNESS), "up", "offline"], check=True, capture_output=True)

    monkeypatch.setattr(sys, "stderr", RetryWatcher(sys.stderr, restart))
    try:
        result = Executor(docker, Console(quiet=True)).run(Plan("build", build_steps))
    finally:
        subprocess.run([str(HARNESS), "up", "offline"], check=True, capture_output=True)
    assert len(restarts) == 1 and "Cannot connect to the Docker daemon" in restarts[0]
    assert result.builds()[0].detail["report"].steps
