"""Makefile.offline.mk: every target delegates to a task that ``inv --list`` shows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from offline_build import makefile
from offline_build.config import load

ROOT = Path(__file__).resolve().parents[2]
MK = ROOT / "Makefile.offline.mk"
DEMO = ROOT / "examples" / "demo" / "offline.yaml"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def listed_tasks() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines()[2:] if line.strip() and line.startswith("  ") and not line.startswith("    ")}


def make_targets(path: Path) -> list[str]:
    return re.findall(r"^([a-z0-9-]+):\s*$", path.read_text(), flags=re.M)


def dry(makefile_path: Path, target: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["make", "-s", "-n", "-f", str(makefile_path), target], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_the_committed_file_is_what_the_generator_writes() -> None:
    assert MK.read_text() == makefile.render(load(DEMO, environ={}), runner="inv")


def test_every_target_delegates_to_a_listed_task() -> None:
    tasks = listed_tasks()
    targets = [t for t in make_targets(MK) if t != "offline-help"]
    assert {"offline-export", "offline-setup", "offline-build", "backend-offline-build"} <= set(targets)
    for target in targets:
        command = dry(MK, target)
        runner, task = command.split()
        assert runner == "inv"
        assert task in tasks, f"{target} -> {task}, which inv --list does not show"


def test_appended_to_an_existing_makefile_keeps_its_default_goal(tmp_path: Path) -> None:
    host = tmp_path / "Makefile"
    host.write_text("all:\n\t@echo building the app\n\n" + MK.read_text())
    assert dry(host, "all", cwd=tmp_path).endswith("building the app")
    assert subprocess.run(["make", "-s", "-f", str(host)], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip() == "building the app"
    assert dry(host, "web-offline-build", cwd=tmp_path) == "inv web.offline-build"


def test_cache_dir_and_version_pass_through(tmp_path: Path) -> None:
    probe = tmp_path / "Makefile"
    probe.write_text(MK.read_text().replace("$(OFFLINE_BUILD) offline.export",
                                            "@echo CACHE_DIR=$$CACHE_DIR OFFLINE_VERSION=$$OFFLINE_VERSION"))
    out = subprocess.run(["make", "-s", "-f", str(probe), "offline-export", "CACHE_DIR=/c", "OFFLINE_VERSION=9"],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert out == "CACHE_DIR=/c OFFLINE_VERSION=9"


def test_targets_exist_only_for_tasks_that_exist() -> None:
    project = load(DEMO, environ={})
    mapping = makefile.targets(project, {"offline.export", "backend.offline-build"})
    assert mapping == {"offline-export": "offline.export", "backend-offline-build": "backend.offline-build"}
