"""Faults on real engines: a full disk and Ctrl-C during export, the engine killed mid-build."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from python_on_whales import DockerClient
from rich.console import Console

from offline_build import build as building
from offline_build import progress
from offline_build.config import load
from offline_build.store import Layout
from tests.integration.conftest import Demo
from tests.integration.harness import CLI, HARNESS, STATE, RetryWatcher, seed

pytestmark = pytest.mark.engine

@pytest.fixture()
def small_disk(tmp_path: Path) -> Path:
    """A 160 MiB tmpfs: room for the demo's store (about 111 MB), not also for its bundle."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_during_export_is_one_message_and_leaves_no_bundle(
        engines: dict[str, str], demo: Demo, tmp_path: Path, small_disk: Path) -> None:
    # The suite's demo checkout (its APT capture included): every build is cached, the disk is what fails.
    project = shutil.copytree(demo.project, tmp_path / "demo", ignore=shutil.ignore_patterns("build-cache"))
    env = {**os.environ, "CACHE_DIR": str(small_disk)}
    out = subprocess.run([*CLI, "offline.export", "--host", engines["online"]], cwd=project,
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode != 0
    assert "no space left" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not list(small_disk.glob("build-cache-*.tar")) and not list(small_disk.glob(".*.partial"))
    assert Layout(small_disk / "store").reachable()  # what the store holds is whole


# A build step that cannot end before the test interrupts it: never cached (a fresh value each run),
# it blocks for longer than the test waits. Ctrl-C therefore always lands during the build, not
# (on a warm engine, where the demo's builds are all CACHED) after the export has already finished.
BLOCKING = "FROM busybox:local\nARG RUN_ID\nRUN echo \"$RUN_ID\" && sleep 600\n"


def test_ctrl_c_during_export_leaves_no_bundle_and_the_next_export_works(
        engines: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "slow"
    (project / "app").mkdir(parents=True)
    (project / "app" / "Dockerfile").write_text(BLOCKING)
    (project / "offline.yaml").write_text(
        "project: slow\nnetwork: none\nservices:\n"
        f"  app: {{context: app, build_args: {{RUN_ID: '{uuid.uuid4().hex}'}}}}\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A shell without job control starts `cmd &` with SIGINT ignored, and the export would inherit that (a CI
    # run started so saw the export finish its ten-minute build): the export starts as a terminal's would.
    proc = subprocess.Popen([*CLI, "offline.export", "--host", engines["online"]], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), start_new_session=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("==> build app"):  # the blocking build has begun: the export cannot end by itself
                proc.send_signal(signal.SIGINT)
                break
        else:
            pytest.fail(f"the export ended before its build began: {proc.wait()}")
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # failed: the export and its build must not run on into the tests after this
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not list((project / "build-cache").glob("build-cache-*.tar"))
    (project / "app" / "Dockerfile").write_text(BLOCKING.replace("sleep 600", "true"))
    again = subprocess.run([*CLI, "offline.export", "--host", engines["online"]], cwd=project,
                           capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert list((project / "build-cache").glob("build-cache-*.tar"))


def test_the_engine_killed_mid_build_is_restarted_and_the_build_retried(
        engines: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed("offline")
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "Dockerfile").write_text("FROM busybox:local\nRUN sleep 3 && echo done > /done\n")
    (tmp_path / "offline.yaml").write_text("project: slow\nnetwork: none\nservices:\n  slow:\n    context: slow\n")
    project = load(tmp_path / "offline.yaml", environ={})
    docker = DockerClient(host=engines["offline"])

    running = threading.Event()
    original = progress.BuildReport._event

    def watch(self: progress.BuildReport, event: dict) -> None:  # type: ignore[type-arg]
        original(self, event)
        if any("RUN sleep" in v.get("name", "") and v.get("started") for v in event.get("vertexes") or []):
            running.set()

    monkeypatch.setattr(progress.BuildReport, "_event", watch)
    restarts: list[str] = []

    def restart(reason: str) -> None:
        restarts.append(reason)
        subprocess.run([str(HARNESS), "up", "offline"], check=True, capture_output=True)

    monkeypatch.setattr(sys, "stderr", RetryWatcher(sys.stderr, restart))
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(_build(project, docker)), daemon=True)
    try:
        worker.start()
        assert running.wait(timeout=120), "the RUN step never started"
        pid = int((STATE / "offline" / "docker.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        worker.join(timeout=300)
    finally:
        subprocess.run([str(HARNESS), "up", "offline"], check=True, capture_output=True)
    assert len(restarts) == 1, restarts
    (outcome,) = result[0]  # type: ignore[misc]
    assert outcome.steps == 1 and outcome.status in ("built", "rebuilt offline"), outcome


def _build(project, docker):  # noqa: ANN001, ANN202
    try:
        return building.build(project, ["slow"], docker, Console(quiet=True), fallback=False)
    except Exception as exc:  # noqa: BLE001 (handed to the test thread to fail with)
        return [exc]

